-- Migration 013: article_entities.day, the article's day (article_days.day: the UTC date of its
-- publication, else of its first sight), written with each entity row by the load and by
-- retag. Views and named queries over a period (trending_entities, who_was_in_the_news) filter
-- on it, and rows are stored in the order of their days, so that a period's rows are read
-- without the rest: on the lake the reader skips the data files and row groups whose days are
-- all outside the period (at 1M articles a week is 2% of 21M rows). The existing rows get their
-- days and are rewritten in that order once, right after this migration (@entity-days:
-- newsflow.db.entities.order_by_day, which `newsflow migrate` runs on copied rows too).
-- @entity-days
-- @views

alter table article_entities add column day date;
