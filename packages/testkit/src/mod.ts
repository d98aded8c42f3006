// Public API of @portcullis/testkit: fixtures that start real servers for tests.

export type { MqttConnectOptions } from "./mqtt-wire.ts";
export { mqttConnect, mqttPacket, mqttString, mqttVarint } from "./mqtt-wire.ts";
export type { NatsServer, NatsServerOptions } from "./nats-server.ts";
export { freePort, NatsServerError, startNatsServer } from "./nats-server.ts";
export type { RabbitMqNode } from "./rabbitmq.ts";
export { RabbitMqError, startRabbitMq } from "./rabbitmq.ts";
export type { TestCertificate } from "./tls.ts";
export { selfSignedCert } from "./tls.ts";
