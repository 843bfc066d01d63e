-- +goose Up
-- The month in_arrears was judged for: arrears are a month's matter (available
-- credit = allocation − this month's consumption), so a customer still
-- flagged from last month that falls into arrears again this month is a new
-- entry, notified as one.
ALTER TABLE credit_balances ADD COLUMN arrears_month int NOT NULL DEFAULT 0;
UPDATE credit_balances SET arrears_month = to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMM')::int WHERE in_arrears;

-- +goose Down
ALTER TABLE credit_balances DROP COLUMN arrears_month;
