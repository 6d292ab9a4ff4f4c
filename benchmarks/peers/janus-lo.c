/*
 * janus-lo.so: LD_PRELOAD shim for the fan-out benchmark (benchmarks/run.sh).
 *
 * Janus 1.1.2 gathers ICE candidates through libnice, which skips every
 * interface flagged IFF_LOOPBACK, even when the configuration enforces "lo".
 * The benchmark keeps every server on loopback, so this shim clears that flag
 * on "lo" in what getifaddrs() returns; with `interface = "127.0.0.1"` and
 * `ice_enforce_list = "lo"` Janus then offers 127.0.0.1 candidates only.
 *
 *   cc -shared -fPIC -O2 -o janus-lo.so janus-lo.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

int getifaddrs(struct ifaddrs **ifap)
{
	static int (*real)(struct ifaddrs **);
	struct ifaddrs *i;
	int rc;

	if (!real)
		real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if (!real)
		return -1;
	rc = real(ifap);
	if (rc == 0)
		for (i = *ifap; i; i = i->ifa_next)
			if (i->ifa_name && strcmp(i->ifa_name, "lo") == 0)
				i->ifa_flags &= ~IFF_LOOPBACK;
	return rc;
}
