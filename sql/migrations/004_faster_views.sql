-- Migration 004: the views of sql/views/ again, for a faster articles_clean (the best article of
-- each story found with arg_min instead of a window over every article row). No table changes.
-- @views
select 1;
