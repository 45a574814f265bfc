select strftime(a.published_at, '%Y-%m-%d %H:%M') as published, f.title as feed,
       a.title, a.word_count as words
from articles a join feeds f using (feed_id)
order by a.published_at desc nulls last limit 8
