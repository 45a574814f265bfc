-- Pairs of entities named in the same articles: the one definition, read by this view (all
-- articles, materialised as the table entity_pairs with the search index, so as of its last
-- rebuild) and by the report (the articles of its period).
--
-- entity_pair_parts(first_day, last_day, per_article := 12): among the articles of those UTC
-- days (article_days), each article's per_article most salient entities (an entity is its
-- entity_id), counted in parts that add up over disjoint periods: ('pair', a, b, articles
-- naming both), ('entity', e, null, articles naming it), ('articles', null, null, articles).
-- The whole history is built a month at a time from them (db/search_index.py), so that its
-- memory is a month's, not all articles'.
create or replace macro entity_pair_parts(first_day, last_day, per_article := 12) as table
with period as (
    select article_id from article_days where day between first_day and last_day
),
ents as (
    select e.article_id, e.entity_id, max(e.salience) as salience
    from article_entities e semi join period p using (article_id)
    where e.entity_id is not null
    group by e.article_id, e.entity_id
),
-- (a macro parameter is not allowed next to aggregates: the limits apply a step later)
top as (
    select * from ents
    qualify row_number() over (
        partition by article_id order by salience desc, entity_id) <= per_article
)
select 'pair' as part, a.entity_id as id_a, b.entity_id as id_b, count(*) as articles
from top a join top b on a.article_id = b.article_id and a.entity_id < b.entity_id
group by a.entity_id, b.entity_id
union all
select 'entity', entity_id, null, count(*) from top group by entity_id
union all
select 'articles', null, null, count(distinct article_id) from top;

-- entity_pairs_of(parts, min_articles := 2): the pairs of the parts in the table named parts
-- (summed), named together in at least min_articles articles, with each entity's name and
-- label, lift (how much more often than chance) and PMI.
create or replace macro entity_pairs_of(parts, min_articles := 2) as table
with summed as (
    select part, id_a, id_b, sum(articles) as articles from query_table(parts) group by all
),
n as (select articles as n from summed where part = 'articles'),
singles as (select id_a as entity_id, articles from summed where part = 'entity'),
pairs as (
    select * from (select id_a, id_b, articles from summed where part = 'pair')
    where articles >= min_articles
)
select p.id_a as entity_id_a, ea.name as entity_a, ea.label as label_a,
       p.id_b as entity_id_b, eb.name as entity_b, eb.label as label_b, p.articles,
       sa.articles as articles_a, sb.articles as articles_b,
       round(p.articles * n.n / (sa.articles * sb.articles), 3) as lift,
       round(ln(p.articles * n.n / (sa.articles * sb.articles)), 3) as pmi
from pairs p, n
join singles sa on sa.entity_id = p.id_a
join singles sb on sb.entity_id = p.id_b
join entities ea on ea.entity_id = p.id_a
join entities eb on eb.entity_id = p.id_b;

-- entity_pairs_between(first_day, last_day, per_article := 12, min_articles := 2): the pairs
-- of the articles of those days, as entity_pairs_of gives them from the parts of that period.
create or replace macro entity_pairs_between(
    first_day, last_day, per_article := 12, min_articles := 2
) as table
with summed as (
    select * from entity_pair_parts(first_day, last_day, per_article := per_article)
),
n as (select articles as n from summed where part = 'articles'),
singles as (select id_a as entity_id, articles from summed where part = 'entity'),
pairs as (
    select * from (select id_a, id_b, articles from summed where part = 'pair')
    where articles >= min_articles
)
select p.id_a as entity_id_a, ea.name as entity_a, ea.label as label_a,
       p.id_b as entity_id_b, eb.name as entity_b, eb.label as label_b, p.articles,
       sa.articles as articles_a, sb.articles as articles_b,
       round(p.articles * n.n / (sa.articles * sb.articles), 3) as lift,
       round(ln(p.articles * n.n / (sa.articles * sb.articles)), 3) as pmi
from pairs p, n
join singles sa on sa.entity_id = p.id_a
join singles sb on sb.entity_id = p.id_b
join entities ea on ea.entity_id = p.id_a
join entities eb on eb.entity_id = p.id_b;

create or replace view entity_cooccurrence as
select entity_id_a, entity_a, label_a, entity_id_b, entity_b, label_b, articles, articles_a,
       articles_b, lift, pmi
from entity_pairs;
