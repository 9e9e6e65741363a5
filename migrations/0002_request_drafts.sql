-- Each request remembers the draft (the /new form) it was filed from, so that confirming the
-- same draft twice (a double tap, an update delivered again) files one request, not two.
-- Requests filed before this migration have no draft.

-- migrate:up
alter table requests add column draft_id uuid unique;

-- migrate:down
alter table requests drop column draft_id;
