-- Entities whose share of the latest day's coverage rose most against their trailing 7-day
-- baseline. "Latest day" is the newest UTC day with articles. share = articles mentioning the
-- entity / all articles of the period. z is a two-proportion z-score (pooled), so a jump from
-- 1 to 2 articles scores low and a jump from 5 to 40 scores high; entities in fewer than 3
-- articles on the day are left out. lift = (share today + 1/N) / (baseline share + 1/N), with
-- N the baseline's article count, so an entity new today does not divide by zero.
create or replace view trending_entities as
with days as (
    select cast(coalesce(published_at, first_seen_at) as date) as day, article_id
    from articles
),
latest as (select max(day) as day from days),
totals as (
    select count(*) filter (where d.day = l.day) as n_today,
           count(*) filter (where d.day >= l.day - 7 and d.day < l.day) as n_base
    from days d, latest l
),
counts as (
    select e.entity, e.label,
           count(distinct e.article_id) filter (where d.day = l.day) as today,
           count(distinct e.article_id) filter (where d.day >= l.day - 7 and d.day < l.day)
               as base
    from article_entities e join days d using (article_id), latest l
    where d.day >= l.day - 7
    group by all
)
select c.entity, c.label, l.day,
       c.today as articles_today,
       round(c.today / nullif(t.n_today, 0), 4) as share_today,
       c.base as articles_baseline,
       round(c.base / nullif(t.n_base, 0), 4) as share_baseline,
       round((c.today / nullif(t.n_today, 0) + 1.0 / greatest(t.n_base, 1))
             / (coalesce(c.base / nullif(t.n_base, 0), 0) + 1.0 / greatest(t.n_base, 1)), 3)
           as lift,
       round(case when t.n_base = 0 then null else
           (c.today / t.n_today - c.base / t.n_base)
           / sqrt(((c.today + c.base) / (t.n_today + t.n_base))
                  * (1 - (c.today + c.base) / (t.n_today + t.n_base))
                  * (1.0 / t.n_today + 1.0 / t.n_base) + 1e-12) end, 3) as z
from counts c, totals t, latest l
where c.today >= 3;
