-- One row per story: the best text of each story (near-duplicates across outlets share a
-- story_id; an article not matched to others is its own story). The best text is an extracted
-- one (status ok) before feed content, then the longest; the story's first source is its
-- earliest article. An article without a word of text (pending, failed with no feed content)
-- is no story's text.
--
-- articles_clean_between(first_day, last_day): the stories first seen on those UTC days (the
-- day of their earliest member, as in article_days), each with all its members, later ones
-- too. Only the articles of first_day onwards are read whole (articles_between; a story first
-- seen in the period has no earlier member), and the story ids of the ones before, to leave
-- out the stories that began before the period: a day's stories no longer group every
-- article of the store (1.6 s at 3M articles, and growing with them). The view is the macro
-- over all days.
-- Fast at 1M articles (benchmarks/scale.py; docs/performance.md): the members are read from
-- narrow columns only (word_count > 0 rather than text is not null, which reads the texts),
-- the best member of each story is chosen with one arg_min, and only its row is read whole,
-- joined by article_id and first_seen_at so that the reader of the wide columns skips the data
-- files and row groups first seen outside the chosen members' range (a day's stories read a
-- day's texts). A window over all article rows took 4 s; this view's first form 1.7 s.
create or replace macro articles_clean_between(first_day, last_day) as table
with members as not materialized (
    select article_id, feed_id, coalesce(story_id, article_id) as story, first_seen_at,
           seen_at, day, extraction_status, word_count
    from articles_between(first_day, 'infinity'::date)
    where word_count > 0
),
began_before as (
    select distinct coalesce(story_id, article_id) as story
    from articles
    where word_count > 0
      and coalesce(published_at, first_seen_at)
          < timezone('UTC', cast(first_day as date)::timestamp)
      and coalesce(story_id, article_id) in (select story from members)
),
stories as (
    select story,
           count(*) as articles,
           count(distinct feed_id) as outlets,
           arg_min(feed_id, seen_at) as first_feed_id,
           min(seen_at) as first_seen,
           min(day) as story_day,
           arg_min({'id': article_id, 'seen': first_seen_at},
                   (extraction_status <> 'ok', -word_count, seen_at, article_id)) as best
    from members anti join began_before using (story)
    group by story
)
select s.story as story_id, a.article_id, a.feed_id, a.url, a.title, a.authors, a.language,
       a.site_name, a.published_at, a.first_seen_at, s.first_seen as story_first_seen_at,
       s.first_feed_id, s.articles, s.outlets, a.word_count, a.extraction_status,
       a.description, a.top_image, a.keywords, a.text
from stories s
join articles a on a.article_id = s.best.id and a.first_seen_at = s.best.seen
-- (a macro parameter is not allowed next to aggregates: the period's end applies here)
where s.story_day <= cast(last_day as date);

create or replace view articles_clean as
select * from articles_clean_between('-infinity'::date, 'infinity'::date);
