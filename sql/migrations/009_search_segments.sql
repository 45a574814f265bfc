-- Search segments (db/search.py): maintenance merges sealed shards into one file per aligned
-- block of 4, 16 or 64 shards, so a search opens a few files, not one per 25,000 articles.
-- Each shard's row now names the file that holds its index (NULL: its own shard file).
alter table search_index_state add column file varchar;
