-- Pairs of entities named in the same articles: the one definition, read by this view (all
-- articles, materialised as the table entity_pairs by sql/derived/entity_pairs.sql with the
-- search index, so as of its last rebuild) and by the report (the articles of its period).
--
-- entity_pairs_between(first_day, last_day, per_article := 12, min_articles := 2): among the
-- articles of those UTC days (article_days), each article's per_article most salient entities
-- (an entity is its name; its label is its most common one), the pairs named together in at
-- least min_articles articles, with lift (how much more often than chance) and PMI.
create or replace macro entity_pairs_between(
    first_day, last_day, per_article := 12, min_articles := 2
) as table
with period as (
    select article_id from article_days where day between first_day and last_day
),
ents as (
    select e.article_id, e.entity, max(e.salience) as salience, mode(e.label) as label
    from article_entities e semi join period p using (article_id)
    group by e.article_id, e.entity
),
-- (a macro parameter is not allowed next to aggregates: the limits apply a step later)
top as (
    select * from ents
    qualify row_number() over (
        partition by article_id order by salience desc, entity) <= per_article
),
n as (select count(distinct article_id) as n from top),
singles as (
    select entity, mode(label) as label, count(*) as articles from top group by entity
),
pairs as (
    select * from (
        select a.entity as entity_a, b.entity as entity_b, count(*) as articles
        from top a join top b on a.article_id = b.article_id and a.entity < b.entity
        group by a.entity, b.entity
    )
    where articles >= min_articles
)
select p.entity_a, sa.label as label_a, p.entity_b, sb.label as label_b, p.articles,
       sa.articles as articles_a, sb.articles as articles_b,
       round(p.articles * n.n / (sa.articles * sb.articles), 3) as lift,
       round(ln(p.articles * n.n / (sa.articles * sb.articles)), 3) as pmi
from pairs p, n
join singles sa on sa.entity = p.entity_a
join singles sb on sb.entity = p.entity_b;

create or replace view entity_cooccurrence as
select entity_a, label_a, entity_b, label_b, articles, articles_a, articles_b, lift, pmi
from entity_pairs;
