-- The URL of one of the sample newsroom's feeds in a demo database (the port it served on).
-- No parameters.
select url from feeds where active and list_contains(tags, 'demo') limit 1
