-- +goose Up
-- Vouchers on bills (issue 13): partner bills show what vouchers paid of
-- their lines' records, customer bills deduct it in lines of their own.
-- ALTER TABLE fires none of the triggers that keep issued bills unchanged
-- (00015): the bills issued before vouchers existed read voucher 0, which is
-- what they said.

-- What vouchers paid of the line's records (of voucher_redemptions; for an
-- adjustment line, what they paid of the late records).
ALTER TABLE partner_bill_lines ADD COLUMN voucher numeric(20,6) NOT NULL DEFAULT 0;
-- Σ voucher of the bill's lines, adjustments included.
ALTER TABLE partner_bills ADD COLUMN voucher_total numeric(20,6) NOT NULL DEFAULT 0;
-- The adjustment lines' voucher, per month they belong to.
ALTER TABLE partner_bill_adjustments ADD COLUMN voucher numeric(20,6) NOT NULL DEFAULT 0;

-- A customer bill line is the rated usage of a product (USAGE) or what
-- vouchers paid of it, as a negative amount (VOUCHER): one of each per
-- product and month.
ALTER TABLE customer_bill_lines ADD COLUMN kind text NOT NULL DEFAULT 'USAGE' CHECK (kind IN ('USAGE','VOUCHER'));
ALTER TABLE customer_bill_lines DROP CONSTRAINT customer_bill_lines_pkey;
ALTER TABLE customer_bill_lines ADD PRIMARY KEY (bill_id, for_month, kind, product_code);

-- The bill run sums a month's redemptions per line.
CREATE INDEX voucher_redemptions_month_idx ON voucher_redemptions (month, owner_id);

-- +goose Down
DROP INDEX voucher_redemptions_month_idx;
-- The voucher lines go, and with them their part of the bills' totals.
UPDATE customer_bills b SET total = b.total - v.amount
    FROM (SELECT bill_id, sum(amount) AS amount FROM customer_bill_lines WHERE kind = 'VOUCHER' GROUP BY bill_id) v
    WHERE b.id = v.bill_id;
DELETE FROM customer_bill_lines WHERE kind = 'VOUCHER';
ALTER TABLE customer_bill_lines DROP CONSTRAINT customer_bill_lines_pkey;
ALTER TABLE customer_bill_lines DROP COLUMN kind;
ALTER TABLE customer_bill_lines ADD PRIMARY KEY (bill_id, for_month, product_code);
ALTER TABLE partner_bill_adjustments DROP COLUMN voucher;
ALTER TABLE partner_bills DROP COLUMN voucher_total;
ALTER TABLE partner_bill_lines DROP COLUMN voucher;
