/**
 * `AdminClient`: a typed client of the admin API that signs every request
 * (PC1-HMAC-SHA256, see signing.ts). Used by the CLI, the demo seeding and the
 * tests. Non-2xx answers throw {@link AdminApiError} with the server's code,
 * message and path.
 */
import { signRequest } from "./signing.ts";

/** Where and as whom to call the API (the `root-credentials.json` format). */
export interface AdminCredentials {
  endpoint: string;
  accessKeyId: string;
  accessKeySecret: string;
}

/** Options of an {@link AdminClient}. */
export interface AdminClientOptions {
  /** Ask every write to wait until every live edge has applied it. */
  waitEnforced?: boolean;
  waitTimeoutMs?: number;
  /** MQTT instance used when a call does not name one (default `mqtt-local`). */
  mqttInstanceId?: string;
}

/** An error answer of the admin API. */
export class AdminApiError extends Error {
  override name = "AdminApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly path: string | undefined,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Fields every write answer has. */
export interface WriteResult {
  position: number;
  changed: boolean;
  enforcement?: {
    confirmed: boolean;
    position: number;
    waitedMs: number;
    edges: { edgeId: string; kind: string; position: number; stale: boolean }[];
    lagging: { edgeId: string; kind: string; position: number; stale: boolean }[];
  };
}

type Json = Record<string, unknown>;
type Target = { user: string } | { group: string };
const seg = encodeURIComponent;

/** A signing client of the admin API. */
export class AdminClient {
  readonly endpoint: string;
  readonly #creds: AdminCredentials;
  readonly #opts: AdminClientOptions;

  constructor(creds: AdminCredentials, opts: AdminClientOptions = {}) {
    this.#creds = creds;
    this.#opts = opts;
    this.endpoint = creds.endpoint.replace(/\/+$/, "");
  }

  /** The AccessKey id this client signs with. */
  get accessKeyId(): string {
    return this.#creds.accessKeyId;
  }

  /** A client with other options and the same credentials. */
  with(opts: AdminClientOptions): AdminClient {
    return new AdminClient(this.#creds, { ...this.#opts, ...opts });
  }

  /** Send one signed request; resolves to the JSON answer, throws AdminApiError on 4xx/5xx. */
  async request<T = Json>(
    method: string,
    path: string,
    o: { query?: Record<string, string | undefined>; body?: unknown } = {},
  ): Promise<T> {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) query[k] = v;
    if (method !== "GET" && path !== "/v1/simulate" && this.#opts.waitEnforced) {
      query.waitEnforced = "true";
      if (this.#opts.waitTimeoutMs !== undefined) query.waitTimeoutMs = String(this.#opts.waitTimeoutMs);
    }
    const qs = Object.entries(query)
      .map(([k, v]) => `${seg(k)}=${seg(v)}`)
      .join("&");
    const target = qs ? `${path}?${qs}` : path;
    const url = new URL(target, `${this.endpoint}/`);
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers = signRequest({
      method,
      url: `${url.pathname}${url.search}`,
      host: url.host,
      ...(body !== undefined ? { body } : {}),
      accessKeyId: this.#creds.accessKeyId,
      accessKeySecret: this.#creds.accessKeySecret,
      ...(body !== undefined ? { extraHeaders: { "content-type": "application/json" } } : {}),
    });
    const { host: _host, ...send } = headers;
    const res = await fetch(url, { method, headers: send, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let parsed: Json;
    try {
      parsed = text ? (JSON.parse(text) as Json) : {};
    } catch {
      parsed = { message: text };
    }
    if (!res.ok)
      throw new AdminApiError(
        res.status,
        String(parsed.code ?? res.status),
        String(parsed.message ?? res.statusText),
        typeof parsed.path === "string" ? parsed.path : undefined,
        parsed,
      );
    return parsed as T;
  }

  #inst(instanceId?: string) {
    return seg(instanceId ?? this.#opts.mqttInstanceId ?? "mqtt-local");
  }

  // ---- caller ----
  /** The caller's identity, account and the gateway's region and instances. */
  whoami() {
    return this.request("GET", "/v1/account");
  }

  // ---- users ----
  /** Create a RAM user. */
  createUser(userName: string, o: { displayName?: string } = {}) {
    return this.request<WriteResult & Json>("POST", "/v1/users", { body: { userName, ...o } });
  }
  /** Rename a user or set its display name. */
  updateUser(userName: string, o: { newUserName?: string; displayName?: string }) {
    return this.request<WriteResult & Json>("PATCH", `/v1/users/${seg(userName)}`, { body: o });
  }
  /** Disable a user (its keys stop working). */
  disableUser(userName: string) {
    return this.request<WriteResult & Json>("POST", `/v1/users/${seg(userName)}/disable`);
  }
  /** Enable a disabled user. */
  enableUser(userName: string) {
    return this.request<WriteResult & Json>("POST", `/v1/users/${seg(userName)}/enable`);
  }
  /** Delete a user and everything it holds. */
  deleteUser(userName: string) {
    return this.request<WriteResult>("DELETE", `/v1/users/${seg(userName)}`);
  }
  /** All users. */
  listUsers() {
    return this.request<{ users: Json[] }>("GET", "/v1/users");
  }
  /** One user. */
  getUser(userName: string) {
    return this.request("GET", `/v1/users/${seg(userName)}`);
  }

  // ---- access keys ----
  /** Create an AccessKey for a user, or for the account itself without a user. */
  createAccessKey(userName?: string) {
    return this.request<
      WriteResult & { accessKeyId: string; accessKeySecret: string; status: string; userName?: string }
    >("POST", userName === undefined ? "/v1/access-keys" : `/v1/users/${seg(userName)}/access-keys`);
  }
  /** AccessKeys of a user, or of the account itself. */
  listAccessKeys(userName?: string) {
    return this.request<{ accessKeys: Json[] }>(
      "GET",
      userName === undefined ? "/v1/access-keys" : `/v1/users/${seg(userName)}/access-keys`,
    );
  }
  /** Activate or deactivate an AccessKey. */
  setAccessKeyStatus(accessKeyId: string, status: "Active" | "Inactive") {
    return this.request<WriteResult & Json>("PATCH", `/v1/access-keys/${seg(accessKeyId)}`, {
      body: { status },
    });
  }
  /** Delete an AccessKey. */
  deleteAccessKey(accessKeyId: string) {
    return this.request<WriteResult>("DELETE", `/v1/access-keys/${seg(accessKeyId)}`);
  }

  // ---- groups ----
  /** Create a group. */
  createGroup(groupName: string, o: { comments?: string } = {}) {
    return this.request<WriteResult & Json>("POST", "/v1/groups", { body: { groupName, ...o } });
  }
  /** Delete an empty group. */
  deleteGroup(groupName: string) {
    return this.request<WriteResult>("DELETE", `/v1/groups/${seg(groupName)}`);
  }
  /** All groups. */
  listGroups() {
    return this.request<{ groups: Json[] }>("GET", "/v1/groups");
  }
  /** One group. */
  getGroup(groupName: string) {
    return this.request("GET", `/v1/groups/${seg(groupName)}`);
  }
  /** Add a user to a group. */
  addUserToGroup(groupName: string, userName: string) {
    return this.request<WriteResult & Json>("PUT", `/v1/groups/${seg(groupName)}/members/${seg(userName)}`);
  }
  /** Remove a user from a group. */
  removeUserFromGroup(groupName: string, userName: string) {
    return this.request<WriteResult & Json>(
      "DELETE",
      `/v1/groups/${seg(groupName)}/members/${seg(userName)}`,
    );
  }

  // ---- policies ----
  /** Create a custom policy. */
  createPolicy(policyName: string, document: unknown, o: { description?: string } = {}) {
    return this.request<WriteResult & Json>("POST", "/v1/policies", { body: { policyName, document, ...o } });
  }
  /** A new version of a policy. */
  createPolicyVersion(policyName: string, document: unknown, o: { setAsDefault?: boolean } = {}) {
    return this.request<WriteResult & Json>("POST", `/v1/policies/${seg(policyName)}/versions`, {
      body: { document, ...o },
    });
  }
  /** Make a version the default. */
  setDefaultPolicyVersion(policyName: string, versionId: string) {
    return this.request<WriteResult & Json>("PUT", `/v1/policies/${seg(policyName)}/default-version`, {
      body: { versionId },
    });
  }
  /** Delete a non-default version. */
  deletePolicyVersion(policyName: string, versionId: string) {
    return this.request<WriteResult>("DELETE", `/v1/policies/${seg(policyName)}/versions/${seg(versionId)}`);
  }
  /** Delete a custom policy. */
  deletePolicy(policyName: string) {
    return this.request<WriteResult>("DELETE", `/v1/policies/${seg(policyName)}`);
  }
  /** One policy (system or custom). */
  getPolicy(policyName: string) {
    return this.request("GET", `/v1/policies/${seg(policyName)}`);
  }
  /** One version of a policy. */
  getPolicyVersion(policyName: string, versionId: string) {
    return this.request("GET", `/v1/policies/${seg(policyName)}/versions/${seg(versionId)}`);
  }
  /** System and custom policies. */
  listPolicies(type?: "System" | "Custom") {
    return this.request<{ policies: Json[] }>("GET", "/v1/policies", { query: { type } });
  }
  /** Users and groups a policy is attached to. */
  listEntitiesForPolicy(policyName: string) {
    return this.request<{ users: string[]; groups: string[] }>(
      "GET",
      `/v1/policies/${seg(policyName)}/attachments`,
    );
  }

  // ---- attachments ----
  #targetPath(t: Target) {
    return "user" in t ? `/v1/users/${seg(t.user)}` : `/v1/groups/${seg(t.group)}`;
  }
  /** Attach a policy (system names are recognised) to a user or group. */
  attachPolicy(policyName: string, target: Target, policyType?: "System" | "Custom") {
    return this.request<WriteResult & Json>("POST", `${this.#targetPath(target)}/policies`, {
      body: { policyName, ...(policyType ? { policyType } : {}) },
    });
  }
  /** Detach a policy from a user or group. */
  detachPolicy(policyName: string, target: Target, policyType?: "System" | "Custom") {
    return this.request<WriteResult & Json>(
      "DELETE",
      `${this.#targetPath(target)}/policies/${seg(policyName)}`,
      {
        query: { policyType },
      },
    );
  }
  /** Policies attached to a user (and via its groups) or to a group. */
  listPoliciesFor(target: Target) {
    return this.request("GET", `${this.#targetPath(target)}/policies`);
  }

  // ---- MQTT ----
  /** Create a parent topic. */
  createTopic(topic: string, instanceId?: string) {
    return this.request<WriteResult & Json>("POST", `/v1/mqtt/instances/${this.#inst(instanceId)}/topics`, {
      body: { topic },
    });
  }
  /** Delete a parent topic. */
  deleteTopic(topic: string, instanceId?: string) {
    return this.request<WriteResult>(
      "DELETE",
      `/v1/mqtt/instances/${this.#inst(instanceId)}/topics/${seg(topic)}`,
    );
  }
  /** Parent topics of an instance. */
  listTopics(instanceId?: string) {
    return this.request<{ topics: string[] }>("GET", `/v1/mqtt/instances/${this.#inst(instanceId)}/topics`);
  }
  /** Create a Group ID (owned by the caller). */
  createGroupId(groupId: string, instanceId?: string) {
    return this.request<WriteResult & Json>(
      "POST",
      `/v1/mqtt/instances/${this.#inst(instanceId)}/group-ids`,
      {
        body: { groupId },
      },
    );
  }
  /** Delete a Group ID. */
  deleteGroupId(groupId: string, instanceId?: string) {
    return this.request<WriteResult>(
      "DELETE",
      `/v1/mqtt/instances/${this.#inst(instanceId)}/group-ids/${seg(groupId)}`,
    );
  }
  /** Group IDs the caller may use. */
  listGroupIds(instanceId?: string) {
    return this.request<{ groupIds: Json[] }>(
      "GET",
      `/v1/mqtt/instances/${this.#inst(instanceId)}/group-ids`,
    );
  }

  // ---- console grants ----
  /** Grant PUB/SUB on a topic to a user. */
  addConsoleGrant(userName: string, topic: string, perms: ("PUB" | "SUB")[], instanceId?: string) {
    return this.request<WriteResult & Json>("POST", `/v1/users/${seg(userName)}/console-grants`, {
      body: { topic, perms, ...(instanceId ? { instanceId } : {}) },
    });
  }
  /** Revoke console grants. */
  removeConsoleGrant(userName: string, topic: string, perms: ("PUB" | "SUB")[], instanceId?: string) {
    return this.request<WriteResult & Json>("DELETE", `/v1/users/${seg(userName)}/console-grants`, {
      query: { topic, perms: perms.join(","), instanceId },
    });
  }
  /** A user's console grants. */
  listConsoleGrants(userName: string) {
    return this.request<{ consoleGrants: Json[] }>("GET", `/v1/users/${seg(userName)}/console-grants`);
  }

  // ---- simulate ----
  /** The decision object for a request, at head or at a past position/time. */
  simulate(body: {
    principal: { kind: "root" } | { kind: "user"; userName: string };
    action: string;
    resource: string;
    context?: Record<string, unknown>;
    position?: number;
    time?: string;
  }) {
    return this.request<Json & { decision: string; position: number }>("POST", "/v1/simulate", { body });
  }
}
