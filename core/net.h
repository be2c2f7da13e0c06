/* net.h — one request/reply exchange with a server over UDP or TCP on the loop: the
 * implementation of swp_host.net_exchange (DNS updates are its first user). No name
 * resolution: addresses are numeric. Each exchange has its own socket and its own
 * transport timeout (a uv timer, like http_client's: it bounds I/O, not behaviour).
 * Context: loop thread only.
 */
#ifndef SW_NET_H
#define SW_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "steward/swp_types.h"

struct sw_net;

/* status 0: reply/len hold a complete reply (borrowed for the call); < 0: SW_ETIMEDOUT,
 * SW_EIO, SW_ETOOBIG, SW_EINVAL, SW_ECANCELED. */
typedef void (*sw_net_cb)(void *ud, int status, const uint8_t *reply, size_t len);

/* loop is borrowed. Owned; free with sw_net_close. */
struct sw_net *sw_net_new(uv_loop_t *loop);
/* Cancels every exchange in flight (callbacks fire with SW_ECANCELED), closes the handles;
 * the struct is freed once they are closed, which needs one more turn of the loop. NULL ok. */
void sw_net_close(struct sw_net *net);

/* Start an exchange; req and its data are copied. req->complete (FRAME_CUSTOM) is called
 * with complete_ud. Returns an id > 0 and later calls cb exactly once (never inside this
 * call), or 0 (bad request: unknown transport or framing, unparsable address, empty data,
 * FRAME_CUSTOM without complete) and never calls cb. */
uint64_t sw_net_exchange(struct sw_net *net, const struct swp_net_req *req, void *complete_ud,
                         sw_net_cb cb, void *ud);
/* cb fires with SW_ECANCELED before this returns; unknown ids are ignored. */
void sw_net_cancel(struct sw_net *net, uint64_t id);
size_t sw_net_in_flight(const struct sw_net *net);

#endif /* SW_NET_H */
