-- The rows of table entity_pairs (read by the view entity_cooccurrence): pairs of entities named
-- in the same article (each article's 12 most salient entities), seen together in at least 2
-- articles. lift = P(a and b) / (P(a) P(b)) over all tagged articles (> 1: they appear together
-- more than chance would have it); pmi = ln(lift).
-- Computed with the search index (Store.refresh_search_index: after each load up to
-- search_rebuild_max_articles, daily by maintenance beyond), not at query time: at 1M articles
-- it takes about 20 s (a window over 20M entity rows, then a self-join).
with top as (
    select article_id, entity, label
    from article_entities
    qualify row_number() over (partition by article_id order by salience desc, entity) <= 12
),
n as (select count(distinct article_id) as n from article_entities),
singles as (
    select entity, label, count(distinct article_id) as articles from top group by all
),
pairs as (
    select a.entity as entity_a, a.label as label_a, b.entity as entity_b, b.label as label_b,
           count(*) as articles
    from top a join top b
      on a.article_id = b.article_id
     and (a.entity < b.entity or (a.entity = b.entity and a.label < b.label))
    group by all
    having count(*) >= 2
)
select p.entity_a, p.label_a, p.entity_b, p.label_b, p.articles,
       sa.articles as articles_a, sb.articles as articles_b,
       round(p.articles * n.n / (sa.articles * sb.articles), 3) as lift,
       round(ln(p.articles * n.n / (sa.articles * sb.articles)), 3) as pmi
from pairs p, n
join singles sa on sa.entity = p.entity_a and sa.label = p.label_a
join singles sb on sb.entity = p.entity_b and sb.label = p.label_b
