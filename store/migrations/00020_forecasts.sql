-- +goose Up
-- Spend forecasts (issue 14): one row per budget and period in which the
-- month-end projection of the customer's spend crossed 100% of the budget
-- before the spend itself did, so the forecast alert is sent once. period
-- is YYYYMM for MONTHLY budgets and 0 for ONE_TIME ones, as in
-- budget_alerts. No foreign key: a cleared budget's alerts stay as history.
CREATE TABLE forecast_alerts (
    budget_id   bigint NOT NULL,
    period      int NOT NULL,
    customer_id bigint NOT NULL,
    amount      numeric(20,6) NOT NULL,
    spent       numeric(20,6) NOT NULL,
    projected   numeric(20,6) NOT NULL,
    exceeds_on  date NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (budget_id, period)
);

-- +goose Down
DROP TABLE forecast_alerts;
