-- Per entity (entity_id: one entity across articles, see the table entities) and UTC day (of
-- publication, else first sight; see article_days): in how many articles and from how many
-- sources (feeds) it appeared, and how often it was mentioned. entity and label are the
-- entity's own (its name and its one label).
--
-- entity_mentions_between(first_day, last_day): the same over those days only, reading only
-- their rows: the entity rows by article_entities.day (the article's day, stored in day
-- order), the articles by articles_between. A filter on the view's day reads the articles of
-- every day (at 3M articles one entity's week took as long as its whole history, 1.5 s).
create or replace macro entity_mentions_between(first_day, last_day) as table
select e.entity_id, n.name as entity, n.label, e.day,
       count(distinct e.article_id) as articles,
       count(distinct a.feed_id) as sources,
       sum(e.mentions) as mentions,
       avg(e.salience) as avg_salience
from article_entities e
join articles_between(first_day, last_day) a using (article_id)
join entities n using (entity_id)
where e.day between cast(first_day as date) and cast(last_day as date)
group by all;

create or replace view entity_mentions_daily as
select * from entity_mentions_between('-infinity'::date, 'infinity'::date);
