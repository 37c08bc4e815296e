// libnats (the NATS C client), loaded with dlopen the first time a JetStream
// sink starts; built only where nats.h was found (CMakeLists.txt). The addon
// does not link it: a machine without libnats loads the addon and loses only
// the jetstream option (with an error that says what to install), and the
// prebuild's NEEDED list does not grow.
#pragma once
#include <string>

#include <nats/nats.h>

// Every libnats function the sink calls. The pointer types come from nats.h
// itself (decltype), so a signature can never drift from the header.
#define MSGS_NATS_FUNCTIONS(X)                                                                     \
  X(natsOptions_Create) X(natsOptions_Destroy) X(natsOptions_SetServers) X(natsOptions_SetName)    \
  X(natsOptions_SetMaxReconnect) X(natsOptions_SetReconnectWait) X(natsOptions_SetRetryOnFailedConnect) \
  X(natsOptions_SetDisconnectedCB) X(natsOptions_SetReconnectedCB) X(natsOptions_SetClosedCB)      \
  X(natsOptions_SetErrorHandler) X(natsOptions_SetTimeout) X(natsOptions_SetPingInterval)          \
  X(natsOptions_SetMaxPingsOut) X(natsOptions_SetNoRandomize)                                      \
  X(natsOptions_SetSecure) X(natsOptions_LoadCATrustedCertificates) X(natsOptions_LoadCertificatesChain) \
  X(natsOptions_SetUserInfo) X(natsOptions_SetToken) X(natsOptions_SetNKeyFromSeed)                \
  X(natsOptions_SetUserCredentialsFromFiles) X(nats_GetLastError) X(natsConnection_GetLastError)                                  \
  X(natsConnection_Connect) X(natsConnection_Close) X(natsConnection_Destroy)                      \
  X(natsConnection_PublishMsg) X(natsConnection_Subscribe) X(natsConnection_GetConnectedUrl)       \
  X(natsConnection_JetStream) X(natsConnection_FlushTimeout) X(natsConnection_RequestMsg)          \
  X(natsSubscription_SetPendingLimits) X(natsSubscription_Unsubscribe) X(natsSubscription_Destroy) \
  X(natsSubscription_Drain) X(natsSubscription_WaitForDrainCompletion)                            \
  X(natsInbox_Create) X(natsInbox_Destroy)                                                         \
  X(natsMsg_Create) X(natsMsg_Destroy) X(natsMsgHeader_Set) X(natsMsg_GetSubject)                  \
  X(natsMsg_GetData) X(natsMsg_GetDataLength)                                                      \
  X(natsStatus_GetText) X(jsOptions_Init) X(jsCtx_Destroy) X(jsStreamConfig_Init) X(js_AddStream)  \
  X(js_GetStreamInfo) X(jsStreamInfo_Destroy)

namespace msgs {

struct NatsApi {
#define MSGS_NATS_POINTER(f) decltype(&::f) f = nullptr;
  MSGS_NATS_FUNCTIONS(MSGS_NATS_POINTER)
#undef MSGS_NATS_POINTER
};

// Loads libnats once per process (thread-safe). Returns nullptr, with the
// reason and the fix in *why, when this machine has no libnats.
const NatsApi* load_nats(std::string* why);

}  // namespace msgs
