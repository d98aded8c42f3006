/**
 * First start: create an account and its root AccessKey in one append (the
 * account stream must not exist yet). Used by `portcullis serve` on an empty
 * data dir; the secret is returned once, to be written to root-credentials.json.
 */

import { type EventStore, NO_STREAM } from "@portcullis/event-store";
import {
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  newEvent,
  type SecretBox,
} from "@portcullis/events";
import { initialState } from "@portcullis/projection";
import { decide } from "./decide/decide.ts";
import { initialIndex } from "./decide/state.ts";
import { newAccessKeyId, newAccessKeySecret, newAccountId } from "./ids.ts";

/** The credentials of a new account's root AccessKey. */
export interface BootstrappedAccount {
  accountId: string;
  alias: string;
  accessKeyId: string;
  accessKeySecret: string;
  position: number;
}

/** Create an account (16-digit id, random unless given) with one root AccessKey. */
export async function bootstrapAccount(
  store: EventStore,
  box: SecretBox,
  opts: { accountId?: string; alias?: string } = {},
): Promise<BootstrappedAccount> {
  const accountId = opts.accountId ?? newAccountId();
  const alias = opts.alias ?? `account-${accountId.slice(-4)}`;
  const accessKeyId = newAccessKeyId();
  const accessKeySecret = newAccessKeySecret();
  const events = decide(
    {
      type: "CreateAccount",
      alias,
      rootAccessKey: { accessKeyId, secret: box.seal(accessKeySecret, accessKeyAad(accessKeyId)) },
    },
    { model: initialState(), index: initialIndex() },
    { accountId, caller: { accountId, kind: "root" } },
  );
  const actor = { kind: "system" as const, name: "bootstrap" };
  const { position } = await store.append(
    accountStream(accountId),
    events.map((e) => newEvent(e.type, CURRENT_SCHEMA_VERSION[e.type], accountId, actor, e.data)),
    { expectedRevision: NO_STREAM },
  );
  return { accountId, alias, accessKeyId, accessKeySecret, position };
}
