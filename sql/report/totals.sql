-- The cards at the top of the report. Parameters: $start, $end (UTC days), $failing_after.
select
    (select path from duckdb_databases() where database_name = current_database()) as database,
    (select count(*) from article_days) as articles_total,
    (select count(*) from article_days where day between $start and $end) as articles_period,
    (select count(distinct e.entity_id) from article_entities e join article_days a using (article_id)
     where a.day between $start and $end) as entities_period,
    (select count(distinct e.article_id) from article_entities e join article_days a using (article_id)
     where a.day between $start and $end) as articles_with_entities,
    (select count(distinct t.article_id) from article_topics t join article_days a using (article_id)
     where a.day between $start and $end) as articles_with_topic,
    (select count(*) from feeds where active) as feeds_active,
    (select count(*) from feeds where active and consecutive_failures >= $failing_after)
        as feeds_failing,
    (select count(*) from runs) as runs,
    (select max(started_at) from runs) as last_run_at,
    (select arg_max(status, started_at) from runs) as last_run_status
