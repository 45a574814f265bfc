-- Entities whose share of a day's coverage rose most against the days before it: the one
-- definition of trending, read by this view (the latest day with articles) and by the report
-- (the latest day of its period).
--
-- trending_baseline_on(last_day, baseline_days := 7): the newest UTC day with articles on or
-- before last_day, its article count (n_today), the articles of the baseline_days before it
-- (n_base) and on how many of those days there were articles (base_days).
--
-- trending_entities_on(last_day, baseline_days := 7, min_articles := 3): per entity (entity_id,
-- with the entity's name and label) named in at least min_articles articles of that day, its share of the day's
-- articles against its share of the baseline's. z is a two-proportion z-score (pooled), so a
-- jump from 1 to 2 articles scores low and a jump from 5 to 40 scores high (NULL without a
-- baseline). lift = (share today + 1/N) / (baseline share + 1/N), with N the baseline's article
-- count, so an entity new today does not divide by zero.
create or replace macro trending_baseline_on(last_day, baseline_days := 7) as table
with latest as (select max(day) as day from article_days where day <= last_day)
select l.day,
       count(a.article_id) filter (where a.day = l.day) as n_today,
       count(a.article_id) filter (where a.day < l.day) as n_base,
       count(distinct a.day) filter (where a.day < l.day) as base_days
from latest l
left join article_days a
  on a.day between l.day - cast(baseline_days as integer) and l.day
group by l.day;

create or replace macro trending_entities_on(last_day, baseline_days := 7, min_articles := 3)
as table
with totals as (
    select * from trending_baseline_on(last_day, baseline_days := baseline_days)
    where day is not null
),
counts as (
    -- article_entities.day is the article's day (article_days.day); filtering on it reads only
    -- the rows of the period (they are stored in the order of their days).
    select e.entity_id,
           count(distinct e.article_id) filter (where e.day = t.day) as today,
           count(distinct e.article_id) filter (where e.day < t.day) as base
    from article_entities e, totals t
    where e.day between t.day - cast(baseline_days as integer) and t.day
    group by e.entity_id
)
select c.entity_id, n.name as entity, n.label, t.day,
       c.today as articles_today, t.n_today,
       round(c.today / nullif(t.n_today, 0), 4) as share_today,
       c.base as articles_baseline, t.n_base,
       round(c.base / nullif(t.n_base, 0), 4) as share_baseline,
       t.base_days,
       round((c.today / nullif(t.n_today, 0) + 1.0 / greatest(t.n_base, 1))
             / (coalesce(c.base / nullif(t.n_base, 0), 0) + 1.0 / greatest(t.n_base, 1)), 3)
           as lift,
       round(case when t.n_base = 0 then null else
           (c.today / t.n_today - c.base / t.n_base)
           / sqrt(((c.today + c.base) / (t.n_today + t.n_base))
                  * (1 - (c.today + c.base) / (t.n_today + t.n_base))
                  * (1.0 / t.n_today + 1.0 / t.n_base) + 1e-12) end, 3) as z
from counts c join entities n using (entity_id), totals t
where c.today >= min_articles;

create or replace view trending_entities as
select * from trending_entities_on((select max(day) from article_days));
