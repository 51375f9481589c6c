-- 002: what a client reports about its modem-side SIM interface (clientSlotStatusInd):
-- reset line, VCC, clock and whether the emulated card is inserted. NULL: not reported.
-- The bank side has had these columns since 001 (bankSlotStatusInd).
ALTER TABLE client_slots
	ADD COLUMN reset_active boolean,
	ADD COLUMN vcc_present boolean,
	ADD COLUMN clk_active boolean,
	ADD COLUMN card_present boolean;
