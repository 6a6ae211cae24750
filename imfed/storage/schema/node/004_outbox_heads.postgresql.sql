-- 004_outbox_heads.sql for PostgreSQL: the same table, kept by the same three triggers,
-- written as PL/pgSQL functions.
CREATE TABLE outbox_heads (
    destination  TEXT NOT NULL,
    lane         TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    PRIMARY KEY (destination, lane)
);
INSERT INTO outbox_heads (destination, lane, seq, next_attempt)
    SELECT o.destination, o.lane, o.seq, o.next_attempt FROM outbox o
    JOIN (SELECT MIN(seq) AS first FROM outbox GROUP BY destination, lane) h
    ON o.seq = h.first;

CREATE FUNCTION outbox_head_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_heads (destination, lane, seq, next_attempt)
        VALUES (NEW.destination, NEW.lane, NEW.seq, NEW.next_attempt)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_head_added AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_head_added();

CREATE FUNCTION outbox_head_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_heads
        WHERE destination = OLD.destination AND lane = OLD.lane AND seq = OLD.seq;
    INSERT INTO outbox_heads (destination, lane, seq, next_attempt)
        SELECT destination, lane, seq, next_attempt FROM outbox
        WHERE destination = OLD.destination AND lane = OLD.lane ORDER BY seq LIMIT 1
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_head_gone AFTER DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_head_gone();

CREATE FUNCTION outbox_head_postponed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE outbox_heads SET next_attempt = NEW.next_attempt
        WHERE destination = NEW.destination AND lane = NEW.lane AND seq = NEW.seq;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_head_postponed AFTER UPDATE OF next_attempt ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_head_postponed();
