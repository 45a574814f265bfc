-- When any feed was last polled (the report's "as of" when that is after its clock).
select max(last_polled_at) from feeds
