-- One stored article, what `newsflow tags` shows and explains. Parameters: $1 article_id.
select article_id, title, text, language, feed_categories, url
from articles where article_id = $1
