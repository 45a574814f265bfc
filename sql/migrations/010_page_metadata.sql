-- What an article's page says about itself, as newspaper4k and news-please users expect:
-- its meta description (og:description), its lead image (og:image) and its keywords, tags
-- and categories. NULL for articles stored from the feed's text and for those loaded before.
alter table articles add column description varchar;
alter table articles add column top_image varchar;
alter table articles add column keywords varchar[];
-- @views (articles_clean gains them)
