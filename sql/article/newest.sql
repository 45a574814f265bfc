-- When the newest article (by article_days.seen_at) not in the future was published, else
-- first seen: where `newsflow report` ends its period by default. No parameters.
select max(seen_at) from article_days where seen_at <= now()
