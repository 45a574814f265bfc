-- Per entity and UTC day (of publication, else first sight; see article_days): in how many
-- articles and from how many sources (feeds) it appeared, and how often it was mentioned.
create or replace view entity_mentions_daily as
select e.entity, e.label, a.day,
       count(distinct e.article_id) as articles,
       count(distinct a.feed_id) as sources,
       sum(e.mentions) as mentions,
       avg(e.salience) as avg_salience
from article_entities e join article_days a using (article_id)
group by all;
