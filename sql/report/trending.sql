-- The entities that rose most on the latest day of the period (trending_entities_on).
-- Parameters: $end, $baseline_days, $min_articles, $top.
select entity, label, articles_today, n_today, articles_baseline, n_base,
       share_today, share_baseline, z
from trending_entities_on($end, baseline_days := $baseline_days, min_articles := $min_articles)
where z is not null and share_today > share_baseline
order by z desc, articles_today desc, entity
limit $top
