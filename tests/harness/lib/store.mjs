// In-memory storage for oidc-provider, written for the test harness.
//
// One HarnessStore holds every model's records (so a rebuilt Provider instance, e.g.
// after /rotate-keys, sees the same sessions, grants and tokens). It also keeps an
// issue-ordered log of RefreshToken records so the control API can list them, including
// ones the provider has since destroyed (revoked / grant revoked), and one of pushed
// authorization requests (RFC 9126) as the client sent them, kept after they are used or expire.

const epoch = () => Math.floor(Date.now() / 1000);
const clone = (v) => (v === undefined ? undefined : structuredClone(v));

export class HarnessStore {
  constructor() {
    this.models = new Map(); // model name -> Map(id -> { payload, expiresAt })
    this.sessionUids = new Map(); // session uid -> session id
    this.userCodes = new Map(); // user code -> device code id
    this.refreshLog = []; // { id, payload, revoked }
    this.refreshIndex = new Map(); // id -> log entry
    this.pushLog = []; // { request_uri, params }
  }

  recordPush(requestUri, params) {
    this.pushLog.push({ request_uri: requestUri, params });
  }

  // Every pushed authorization request, in order: the request_uri it got and the parameters
  // pushed (a repeated one as an array), client authentication left out.
  pushedRequests() {
    return this.pushLog;
  }

  table(model) {
    let t = this.models.get(model);
    if (!t) {
      t = new Map();
      this.models.set(model, t);
    }
    return t;
  }

  // Everything the provider ever stored as a RefreshToken, in issue order.
  refreshTokens() {
    const now = epoch();
    const live = this.table('RefreshToken');
    return this.refreshLog.map((entry) => {
      const stored = live.get(entry.id);
      const p = stored ? stored.payload : entry.payload;
      return {
        value: entry.id,
        consumed: Boolean(p.consumed),
        ...(p.consumed ? { consumed_at: p.consumed } : {}),
        revoked: entry.revoked,
        expired: typeof p.exp === 'number' ? p.exp <= now : false,
        iat: p.iat,
        exp: p.exp,
        client_id: p.clientId,
        account_id: p.accountId,
        grant_id: p.grantId,
        scope: p.scope,
      };
    });
  }

  adapterClass() {
    const store = this;
    return class HarnessAdapter {
      constructor(model) {
        this.model = model;
        this.records = store.table(model);
      }

      live(id) {
        const rec = this.records.get(id);
        if (!rec) return undefined;
        if (rec.expiresAt !== undefined && rec.expiresAt <= Date.now()) {
          this.records.delete(id);
          return undefined;
        }
        return rec;
      }

      async upsert(id, payload, expiresIn) {
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
        const copy = clone(payload);
        this.records.set(id, { payload: copy, expiresAt });
        if (this.model === 'Session' && payload.uid) store.sessionUids.set(payload.uid, id);
        if (payload.userCode) store.userCodes.set(payload.userCode, id);
        if (this.model === 'RefreshToken') {
          const entry = store.refreshIndex.get(id);
          if (entry) {
            entry.payload = copy;
          } else {
            const fresh = { id, payload: copy, revoked: false };
            store.refreshLog.push(fresh);
            store.refreshIndex.set(id, fresh);
          }
        }
      }

      async find(id) {
        return clone(this.live(id)?.payload);
      }

      async findByUid(uid) {
        const id = store.sessionUids.get(uid);
        return id === undefined ? undefined : this.find(id);
      }

      async findByUserCode(userCode) {
        const id = store.userCodes.get(userCode);
        return id === undefined ? undefined : this.find(id);
      }

      async consume(id) {
        const rec = this.records.get(id);
        if (rec) rec.payload.consumed = epoch();
      }

      forget(id) {
        const rec = this.records.get(id);
        this.records.delete(id);
        if (this.model === 'RefreshToken') {
          const entry = store.refreshIndex.get(id);
          if (entry) {
            if (rec) entry.payload = rec.payload;
            entry.revoked = true;
          }
        }
        if (rec?.payload.uid && store.sessionUids.get(rec.payload.uid) === id) {
          store.sessionUids.delete(rec.payload.uid);
        }
        if (rec?.payload.userCode && store.userCodes.get(rec.payload.userCode) === id) {
          store.userCodes.delete(rec.payload.userCode);
        }
      }

      async destroy(id) {
        this.forget(id);
      }

      async revokeByGrantId(grantId) {
        for (const [id, rec] of [...this.records]) {
          if (rec.payload.grantId === grantId) this.forget(id);
        }
      }
    };
  }
}
