-- Budgets (glaas.requests.check_budgets): when the cost of the runs linked to a request first
-- went over its budget, and the run whose registration took it over. Set once, by a
-- compare-and-set, so the over_budget event and its webhook are made once.

ALTER TABLE requests ADD COLUMN over_budget DOUBLE PRECISION;
ALTER TABLE requests ADD COLUMN over_budget_job TEXT;
CREATE INDEX request_runs_by_job ON request_runs(job_id);  -- the compute report by request
