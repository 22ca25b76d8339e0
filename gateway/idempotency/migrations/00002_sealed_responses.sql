-- Responses that hold sensitive data (a customer's name, say) are sealed
-- before they are stored, like every sensitive value at rest: the class
-- whose key sealed a response is kept beside it, so it can be opened again.

-- +goose Up
ALTER TABLE idempotency.records
    ADD COLUMN response_class text,
    -- NULL: the response holds nothing sensitive and is stored as it is.
    ADD CONSTRAINT records_response_class_known CHECK (response_class IN ('pii', 'pci', 'phi')),
    ADD CONSTRAINT records_class_only_with_response CHECK (response_class IS NULL OR response IS NOT NULL);

-- +goose Down
ALTER TABLE idempotency.records DROP COLUMN response_class;
