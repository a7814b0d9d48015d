/* Activation statistics at the input of every linear: how outlier-heavy each site is. */
#ifndef ROTQ_EVAL_STATS_H
#define ROTQ_EVAL_STATS_H
#include "nn/nn.h"


typedef struct rotq_site_stats {
    double sum2, sum4;   /* Σx², Σx⁴ over every entry */
    double max_abs;
    int64_t count;
} rotq_site_stats;

typedef struct rotq_act_stats {
    int64_t n_layers;
    rotq_site_stats *s;  /* [n_layers][ROTQ_N_SITES] */
} rotq_act_stats;

rotq_status rotq_act_stats_init(rotq_act_stats *st, int64_t n_layers);
void rotq_act_stats_free(rotq_act_stats *st);
/* A transform recording into st at every linear input (st stays the caller's). Added after the
 * online rotations, it sees what a quantizer would see. */
rotq_transform rotq_act_stats_transform(rotq_act_stats *st);
/* max|x| / rms(x) over the site's whole activation, and kurtosis E[x⁴]/E[x²]² (3 for a Gaussian). */
double rotq_site_max_over_rms(const rotq_site_stats *s);
double rotq_site_kurtosis(const rotq_site_stats *s);
#endif
