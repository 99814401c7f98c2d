// createSwitchboard(): wires every concern together in one place, so the data flow reads top to bottom.
import type { us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import type { Server } from 'socket.io';
import { mountGrip } from '../api/grip.js';
import { mountApi } from '../api/http-api.js';
import { createTokenVerifier } from '../auth/tokens.js';
import type { Bus } from '../bus/bus.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { RedisBus } from '../bus/redis-bus.js';
import { describeRedis, redisConnectOptions, SentinelFailoverGate } from '../bus/redis-connect.js';
import { Authorizer } from '../channels/authorize.js';
import { Delivery } from '../channels/delivery.js';
import { Publisher } from '../channels/publisher.js';
import { ChannelRules, DEFAULT_RULES } from '../channels/rules.js';
import { ConfigError, loadConfig, type ConfigOverrides } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { unknownEnv } from '../config/unknown-env.js';
import { NodeHttpApp } from '../transport/node-http.js';
import { mountInternal } from '../health/internal.js';
import { Readiness } from '../health/readiness.js';
import { Webhooks } from '../hooks/webhooks.js';
import { LocalConnectionLimits, type ConnectionLimits } from '../limits/connections.js';
import { OriginPolicy } from '../limits/origin.js';
import { RedisConnectionLimits } from '../limits/redis-connections.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createMetrics, initialiseAppHooks, type Metrics } from '../metrics/metrics.js';
import type { SwitchboardApp } from '../core/app.js';
import { attachConnections } from '../protocol/connection.js';
import { Handshake } from '../protocol/handshake.js';
import { createSocketServer } from '../transport/socketio.js';
import { mountStatic } from '../transport/static.js';
import { mountAdminUi } from '../admin/admin-ui.js';
import { SseHub } from '../transport/sse.js';
import { RoomPublisher } from '../transport/room-publisher.js';
import { SocketIoSink } from '../transport/socketio-sink.js';
import { loadUws, type LoadedUws } from '../transport/uws.js';
import { drain } from './drain.js';

export interface Switchboard {
  readonly config: Config;
  readonly io: Server;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly uws: LoadedUws;
  /** Publishes from the embedding program (as the HTTP API would). */
  publish(channel: string, event: string, data: unknown): Promise<string>;
  /** Listens on PORT and INTERNAL_PORT; resolves when both are open and the bus is ready. */
  listen(): Promise<void>;
  /** The ports listen() bound: with PORT=0 or INTERNAL_PORT=0 the system picks free ones (tests). */
  ports(): { port: number; internalPort: number };
  /** Drains (readiness off, paced disconnects over DRAIN_TIMEOUT_MS) and closes everything. */
  close(): Promise<void>;
}

/**
 * Creates a Switchboard node. `config` is a validated Config, or overrides applied on top of the environment.
 * `app` registers in-process RPC methods and authorization hooks.
 */
export async function createSwitchboard(config: Config | ConfigOverrides = {}, app: SwitchboardApp = {}): Promise<Switchboard> {
  const cfg: Config = Object.isFrozen(config) ? (config as Config) : loadConfig(process.env, config as ConfigOverrides);
  const log = createLogger(cfg.logLevel, cfg.nodeId);
  const metrics = createMetrics(cfg.nodeId);
  initialiseAppHooks(metrics, Object.keys(app.rpc ?? {}));
  const uws = loadUws();
  log.info({ uws: uws.name, version: uws.version, nodeVersion: process.version }, `uWebSockets.js loaded from ${uws.name}`);
  for (const u of unknownEnv(process.env))
    log.warn({ env: u.name, like: u.like }, `unknown environment variable ${u.name}${u.like ? ` (did you mean ${u.like}?)` : ''}: ignored`);

  const rules = new ChannelRules(cfg.channelRules ?? DEFAULT_RULES, {
    historySize: cfg.historySize,
    historyTtlMs: cfg.historyTtlSeconds * 1000,
  });
  const redisBase = redisConnectOptions(cfg);
  // Sentinel mode: one watcher of the sentinels' failover events holds every client of this node off the old master.
  const failoverGate =
    redisBase?.target.mode === 'sentinel' ? new SentinelFailoverGate(redisBase, { maxHoldMs: cfg.redisFailoverHoldMs }, log) : undefined;
  failoverGate?.start();
  const redis = redisBase && failoverGate ? { ...redisBase, gate: failoverGate } : redisBase;
  if (redis)
    log.info(
      { redis: describeRedis(redis) },
      `redis mode: ${redis.target.mode}${redis.ignored.length ? ` (ignored: ${redis.ignored.join(', ')})` : ''}`,
    );
  else log.info('no redis configured: single node, in-memory bus');
  const bus: Bus = redis
    ? new RedisBus(
        {
          redis,
          prefix: cfg.redisKeyPrefix,
          nodeId: cfg.nodeId,
          canaryIntervalMs: cfg.canaryIntervalMs,
          canaryTimeoutMs: cfg.canaryTimeoutMs,
          requestTimeoutMs: cfg.clusterRequestTimeoutMs,
          unsubscribeLingerMs: cfg.busUnsubscribeLingerMs,
          positionCheckMs: cfg.busPositionCheckMs,
          channelStateTtlSeconds: cfg.busChannelStateTtlSeconds,
        },
        log,
        metrics,
      )
    : new MemoryBus(cfg.historyTtlSeconds * 1000, {
        maxChannelBytes: cfg.historyMaxChannelBytes,
        maxBytes: cfg.historyMaxBytes,
        maxChannels: cfg.historyMaxChannels,
      });
  metrics.busReady.set(bus.mode === 'memory' ? 1 : 0);
  const readiness = new Readiness(bus, metrics);
  const backend: Webhooks | undefined = cfg.backendUrl
    ? new Webhooks(
        {
          url: cfg.backendUrl,
          secret: cfg.webhookSecret!,
          timeoutMs: cfg.webhookTimeoutMs,
          concurrency: cfg.webhookConcurrency,
          breakerFailures: cfg.webhookBreakerFailures,
          breakerCooldownMs: cfg.webhookBreakerCooldownMs,
          disconnectRetries: cfg.webhookDisconnectRetries,
          retryBackoffMs: cfg.webhookRetryBackoffMs,
          disconnectQueue: cfg.webhookDisconnectQueue,
          maxAnswerBytes: cfg.maxHttpBodyBytes,
        },
        metrics,
        log,
      )
    : undefined;
  const verifier = await createTokenVerifier({
    secret: cfg.jwtSecret,
    publicKey: cfg.jwtPublicKeyFile,
    jwks: cfg.jwtJwksFile,
    audience: cfg.jwtAudience,
    issuer: cfg.jwtIssuer,
  });

  const origins = new OriginPolicy({
    allowedOrigins: cfg.allowedOrigins,
    trustedProxies: cfg.trustedProxies,
    corsCredentials: cfg.corsCredentials,
    warn: (m) => log.warn(m),
  });
  log.info({ origins: origins.mode, corsCredentials: cfg.corsCredentials }, `origin policy: ${origins.describe()}`);
  if (origins.mode === 'any' && cfg.corsCredentials)
    log.warn(
      'ALLOWED_ORIGINS=* with CORS_CREDENTIALS=true: any web page can act with the cookies of your users; list your origins instead',
    );

  const publicApp = uws.uws.App();
  const internalApp = new NodeHttpApp();
  const io = createSocketServer(
    publicApp,
    {
      pingIntervalMs: cfg.pingIntervalMs,
      pingTimeoutMs: cfg.pingTimeoutMs,
      maxPayloadBytes: cfg.maxPayloadBytes,
      perMessageDeflate: cfg.perMessageDeflate,
      idleTimeoutSeconds: cfg.idleTimeoutSeconds,
      maxBackpressureBytes: cfg.maxBackpressureBytes,
      slowConsumerCheckMs: cfg.slowConsumerCheckMs,
      connectTimeoutMs: cfg.connectTimeoutMs,
    },
    { bus, origins, admit: (req) => handshake.admit(handshake.clientIp(req.peer, req.headers['x-forwarded-for'])), metrics, log },
  );
  const delivery = new Delivery({ bus, rules, metrics, log: log.child({ module: 'delivery' }) });
  new SocketIoSink({ io, delivery, rooms: new RoomPublisher(io, publicApp), metrics, volatileLimit: cfg.maxBackpressureBytes / 2 });
  const publisher = new Publisher({ bus, rules, metrics, maxPublishBytes: cfg.maxPublishBytes });
  const authorizer = new Authorizer({ rules, app, backend, tokensRequired: verifier !== undefined, metrics, log });
  const limitOptions = {
    handshakesPerSecondPerIp: cfg.handshakesPerSecondPerIp,
    connectionsPerIp: cfg.connectionsPerIp,
    connectionsPerUser: cfg.connectionsPerUser,
  };
  const limits: ConnectionLimits = redis
    ? new RedisConnectionLimits(
        {
          ...limitOptions,
          redis,
          prefix: cfg.redisKeyPrefix,
          nodeId: cfg.nodeId,
          heartbeatMs: cfg.connectionLimitsHeartbeatMs,
          commandTimeoutMs: cfg.canaryTimeoutMs,
        },
        metrics,
        log,
      )
    : new LocalConnectionLimits(limitOptions, metrics);
  const handshake = new Handshake({
    options: {
      trustedProxies: cfg.trustedProxies,
      webhookForwardHeaders: cfg.webhookForwardHeaders,
      tokenRefreshGraceMs: cfg.tokenRefreshGraceMs,
    },
    verifier,
    backend,
    limits,
    metrics,
    log,
  });
  attachConnections(io, {
    options: {
      maxSubscriptions: cfg.maxSubscriptions,
      maxRpcInFlight: cfg.rpcInFlightPerConnection,
      eventsPerSecond: cfg.eventsPerSecond,
      rateLimitStrikes: cfg.rateLimitStrikes,
      anonymousPublishesPerSecondPerIp: cfg.anonymousPublishesPerSecondPerIp,
    },
    delivery,
    publisher,
    rules,
    authorizer,
    app,
    backend,
    metrics,
    log,
    verifier,
    limits,
    handshake,
  });

  const sseOptions = {
    maxBackpressureBytes: cfg.maxBackpressureBytes,
    maxSubscriptions: cfg.maxSubscriptions,
    sseMaxChannels: cfg.sseMaxChannels,
    sseKeepaliveMs: cfg.sseKeepaliveMs,
  };
  const sse = new SseHub({
    options: sseOptions,
    delivery,
    authorizer,
    handshake,
    origins,
    isDraining: () => readiness.isDraining(),
    watermark: () => bus.watermark(),
    lastId: async (ch) => (await bus.history(ch, undefined, 1, rules.for(ch).historyTtlMs)).entries[0]?.id,
    metrics,
    log,
  });
  sse.mount(publicApp);
  const adapter = io.of('/').adapter;
  metrics.providers.channels = () => adapter.rooms.size - adapter.sids.size;
  metrics.providers.subscriptions = () => {
    let n = 0;
    for (const [room, members] of adapter.rooms) if (!adapter.sids.has(room)) n += members.size;
    return n + sse.subscriptionCount();
  };
  metrics.providers.pendingSessions = () => Math.max(0, io.engine.clientsCount - io.of('/').sockets.size);
  const localConnections = () => io.engine.clientsCount + sse.count();
  bus.setSelf(() => ({ id: cfg.nodeId, connections: localConnections() }));
  const apiOptions = {
    apiKeys: cfg.apiKeys,
    maxHttpBodyBytes: cfg.maxHttpBodyBytes,
    idempotencyWindowSeconds: cfg.idempotencyWindowSeconds,
    nodeId: cfg.nodeId,
  };
  mountApi(publicApp, {
    options: apiOptions,
    origins,
    io,
    bus,
    publisher,
    rules,
    metrics,
    log,
    localConnections,
    sseSubscribers: (c) => sse.subscribers(c),
  });
  mountGrip(publicApp, { options: apiOptions, origins, bus, publisher, metrics, log });
  if (cfg.adminUi) {
    // Off by default; the config refuses ADMIN_UI without credentials. Before mountStatic: its /* would answer /admin/ too.
    mountAdminUi(
      io,
      publicApp,
      {
        username: cfg.adminUiUsername!,
        passwordHash: cfg.adminUiPasswordHash!,
        mode: cfg.adminUiMode,
        readonly: cfg.adminUiReadonly,
        serverId: cfg.nodeId,
      },
      log.child({ module: 'admin' }),
    );
  }
  mountStatic(publicApp, log);
  if (cfg.internalGripPublish) mountGrip(internalApp, { options: apiOptions, origins, bus, publisher, metrics, log }, { keyless: true });
  mountInternal(internalApp, readiness, metrics, log);

  let publicSocket: us_listen_socket | undefined;
  const listenOn = (a: typeof publicApp, port: number, env: string) =>
    new Promise<us_listen_socket>((resolve, reject) =>
      a.listen(cfg.host, port, (s) =>
        s
          ? resolve(s)
          : reject(new ConfigError([`${env}=${port}: cannot listen on ${cfg.host}:${port} (in use, or not permitted; HOST=${cfg.host})`])),
      ),
    );

  let bound: { port: number; internalPort: number } | undefined;
  // Not in the 20.30 build's typings, but in its binary as in every later build.
  const localPort = (s: us_listen_socket) =>
    (uws.uws as unknown as { us_socket_local_port(s: us_listen_socket): number }).us_socket_local_port(s);
  let closing: Promise<void> | undefined;
  const sb: Switchboard = {
    config: cfg,
    io,
    metrics,
    log,
    uws,
    async publish(channel, event, data) {
      const p = publisher.validate(channel, event, data);
      return (await publisher.publish(p.channel, p.event, p.data, 'http', undefined, false, p.json)).id;
    },
    async listen() {
      // The internal port first: /healthz answers and /readyz says why not ready while Redis is verified.
      await new Promise<void>((resolve, reject) =>
        internalApp.listen(cfg.host, cfg.internalPort, (s) =>
          s
            ? resolve()
            : reject(
                new ConfigError([
                  `INTERNAL_PORT=${cfg.internalPort}: cannot listen on ${cfg.host}:${cfg.internalPort} (in use, or not permitted; HOST=${cfg.host})`,
                ]),
              ),
        ),
      );
      await bus.start();
      publicSocket = await listenOn(publicApp, cfg.port, 'PORT');
      bound = { port: localPort(publicSocket), internalPort: internalApp.port()! };
      log.info({ ...bound, host: cfg.host, bus: bus.mode }, 'listening');
    },
    ports() {
      if (!bound) throw new Error('ports() before listen()');
      return bound;
    },
    close() {
      closing ??= drain({
        options: { drainDelayMs: cfg.drainDelayMs, drainTimeoutMs: cfg.drainTimeoutMs },
        io,
        bus,
        readiness,
        metrics,
        log,
        closePublic: () => {
          if (publicSocket) uws.uws.us_listen_socket_close(publicSocket);
          publicSocket = undefined;
        },
        extraClients: () => sse.all(),
        closeInternal: () => internalApp.close(),
      }).finally(async () => {
        await backend?.flush(cfg.webhookTimeoutMs);
        await limits.close?.();
        await failoverGate?.close();
      });
      return closing;
    },
  };
  return sb;
}
