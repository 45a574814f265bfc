-- Per entity (entity_id: one entity across articles, see the table entities) and UTC day (of
-- publication, else first sight; see article_days): in how many articles and from how many
-- sources (feeds) it appeared, and how often it was mentioned. entity and label are the
-- entity's own (its name and its one label).
create or replace view entity_mentions_daily as
select e.entity_id, n.name as entity, n.label, a.day,
       count(distinct e.article_id) as articles,
       count(distinct a.feed_id) as sources,
       sum(e.mentions) as mentions,
       avg(e.salience) as avg_salience
from article_entities e join article_days a using (article_id)
join entities n using (entity_id)
group by all;
