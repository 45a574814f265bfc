-- Full-text search in shards (db/search.py): one DuckDB file per SHARD_ARTICLES articles in the
-- order they were loaded, beside the catalog. Each row of search_index_state now says what one
-- shard file holds: its number, its articles and the newest loaded_at among them; the single
-- index of before is rebuilt as shards by the next load or `newsflow search --rebuild`.
alter table search_index_state add column shard integer;
alter table search_index_state add column last_loaded_at timestamptz;
delete from search_index_state;
