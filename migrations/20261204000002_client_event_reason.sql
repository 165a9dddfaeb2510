-- Why a connection ended (tcpclean) or a CONNECT was refused, for the device trace (QueryMqttTraceDevice):
-- Alibaba's ActionInfo words such as 'no heart' or 'clientId conflict'; null from brokers that do not say.
alter table client_events add column reason text;
