// The Node-API binding's parts (addon*.cc): only translation between JS
// values and the engine. Validation and the user-facing API live in lib/.
#pragma once
#include <napi.h>

#include "auth.h"
#include "config.h"
#include "engine.h"
#include "events.h"
#include "hooks.h"

namespace msgs::binding {

// A counter as a JS number: exact below 2^53, which no counter reaches.
inline void set_count(Napi::Object& o, const char* key, uint64_t v) {
  o.Set(key, Napi::Number::New(o.Env(), static_cast<double>(v)));
}

// addon_config.cc: the object lib's resolveConfig() returned, as the C++
// mirror. Throws Napi::TypeError naming a field that is missing or of the
// wrong type (a bug in lib, never a user's mistake).
Config config_from_js(const Napi::Object& o);
// The principals lib loaded (auth.tokensFile, auth.principals):
// [{ name, token: boolean, sha256: Buffer(32) | null, clientIds: [from, to, ...] }].
std::vector<Principal> principals_from_js(const Napi::Value& v);

// addon_stats.cc: every counter, named by the one stats table.
Napi::Object stats_to_js(Napi::Env env, const Engine& e);
// The table's scalar fields, for lib's metrics: [{ name, metric, type, help }].
Napi::Array stats_schema(Napi::Env env);

// addon_events.cc: an engine event as an object with named fields.
Napi::Object event_to_js(Napi::Env env, const Event& ev);
// A hook batch as (data: Buffer, meta: { seq, timeUs, msgId, clientId,
// nameLen, offset, payloadLen }: one typed array per field). The Buffer owns
// the batch from here on.
void hook_batch_to_js(Napi::Env env, HookBatch* b, Napi::Value* data, Napi::Value* meta);

}  // namespace msgs::binding
