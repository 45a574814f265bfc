-- The latest day with articles in the period and its baseline. Parameters: $end, $baseline_days.
select day, n_today, n_base, base_days
from trending_baseline_on($end, baseline_days := $baseline_days)
where day is not null
