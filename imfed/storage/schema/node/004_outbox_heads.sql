-- The first item of every outbox lane, kept by triggers as items come and go, so finding the
-- lanes that are due reads one row per lane instead of the whole queue (a peer down for a
-- week can have a million items waiting).
CREATE TABLE outbox_heads (
    destination  TEXT NOT NULL,
    lane         TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    PRIMARY KEY (destination, lane)
);
INSERT INTO outbox_heads (destination, lane, seq, next_attempt)
    SELECT o.destination, o.lane, o.seq, o.next_attempt FROM outbox o
    JOIN (SELECT MIN(seq) AS first FROM outbox GROUP BY destination, lane) h
    ON o.seq = h.first;

CREATE TRIGGER outbox_head_added AFTER INSERT ON outbox
BEGIN
    INSERT OR IGNORE INTO outbox_heads (destination, lane, seq, next_attempt)
        VALUES (NEW.destination, NEW.lane, NEW.seq, NEW.next_attempt);
END;

CREATE TRIGGER outbox_head_gone AFTER DELETE ON outbox
BEGIN
    DELETE FROM outbox_heads
        WHERE destination = OLD.destination AND lane = OLD.lane AND seq = OLD.seq;
    INSERT OR IGNORE INTO outbox_heads (destination, lane, seq, next_attempt)
        SELECT destination, lane, seq, next_attempt FROM outbox
        WHERE destination = OLD.destination AND lane = OLD.lane ORDER BY seq LIMIT 1;
END;

CREATE TRIGGER outbox_head_postponed AFTER UPDATE OF next_attempt ON outbox
BEGIN
    UPDATE outbox_heads SET next_attempt = NEW.next_attempt
        WHERE destination = NEW.destination AND lane = NEW.lane AND seq = NEW.seq;
END;
