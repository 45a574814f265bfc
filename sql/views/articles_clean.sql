-- One row per story: the best text of each story (near-duplicates across outlets share a
-- story_id; an article not matched to others is its own story). The best text is an extracted
-- one (status ok) before feed content, then the longest; the story's first source is its
-- earliest article.
create or replace view articles_clean as
with ranked as (
    select a.*,
           coalesce(a.story_id, a.article_id) as story,
           coalesce(a.published_at, a.first_seen_at) as seen_at
    from articles a
    where a.text is not null
),
stories as (
    select story,
           count(*) as articles,
           count(distinct feed_id) as outlets,
           arg_min(feed_id, seen_at) as first_feed_id,
           min(seen_at) as first_seen
    from ranked group by story
)
select r.story as story_id, r.article_id, r.feed_id, r.url, r.title, r.authors, r.language,
       r.site_name, r.published_at, r.first_seen_at, s.first_seen as story_first_seen_at,
       s.first_feed_id, s.articles, s.outlets, r.word_count, r.extraction_status, r.text
from ranked r join stories s using (story)
qualify row_number() over (
    partition by r.story
    order by (r.extraction_status = 'ok') desc, r.word_count desc, r.seen_at, r.article_id
) = 1;
