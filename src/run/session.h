/* Sessions, library side: what lower layers of rotq may reach that the public API does not show. */
#ifndef ROTQ_RUN_SESSION_H
#define ROTQ_RUN_SESSION_H
#include "nn/nn.h"

/* The session's runner, its transforms in place (for in-library evaluation code). */
rotq_runner *rotq_session_runner(rotq_session *s);
#endif
