/* Host detection for `--spec host`: reads /proc/cpuinfo (x86 "flags", AArch64 "Features"),
 * drops x86 AVX/AVX-512 flags whose register state the OS has not enabled (XCR0), picks the
 * most specific bundled spec whose host requirements this CPU meets, and replaces its LLVM cpu
 * and features with a generic cpu name and this CPU's own feature list. Invariant: the host
 * spec never names a CPU or feature this machine lacks. */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "spec_int.h"

/* cpuinfo flag -> LLVM feature, per architecture. Flags not listed are not passed to LLVM;
 * listed ones are passed as +name or -name. */
static const struct feature {
  const char *arch, *flag, *llvm;
} features[] = {
    /* arch      cpuinfo flag        LLVM feature */
    {"x86_64", "sse", "sse"},
    {"x86_64", "sse2", "sse2"},
    {"x86_64", "pni", "sse3"},
    {"x86_64", "ssse3", "ssse3"},
    {"x86_64", "sse4_1", "sse4.1"},
    {"x86_64", "sse4_2", "sse4.2"},
    {"x86_64", "popcnt", "popcnt"},
    {"x86_64", "cx16", "cx16"},
    {"x86_64", "lahf_lm", "sahf"},
    {"x86_64", "movbe", "movbe"},
    {"x86_64", "xsave", "xsave"},
    {"x86_64", "avx", "avx"},
    {"x86_64", "avx2", "avx2"},
    {"x86_64", "fma", "fma"},
    {"x86_64", "f16c", "f16c"},
    {"x86_64", "bmi1", "bmi"},
    {"x86_64", "bmi2", "bmi2"},
    {"x86_64", "abm", "lzcnt"},
    {"x86_64", "adx", "adx"},
    {"x86_64", "aes", "aes"},
    {"x86_64", "pclmulqdq", "pclmul"},
    {"x86_64", "sha_ni", "sha"},
    {"x86_64", "gfni", "gfni"},
    {"x86_64", "vaes", "vaes"},
    {"x86_64", "vpclmulqdq", "vpclmulqdq"},
    {"x86_64", "avx_vnni", "avxvnni"},
    {"x86_64", "avx512f", "avx512f"},
    {"x86_64", "avx512f", "evex512"}, /* LLVM 18+: 512-bit registers are a feature of their own */
    {"x86_64", "avx512cd", "avx512cd"},
    {"x86_64", "avx512bw", "avx512bw"},
    {"x86_64", "avx512dq", "avx512dq"},
    {"x86_64", "avx512vl", "avx512vl"},
    {"x86_64", "avx512ifma", "avx512ifma"},
    {"x86_64", "avx512vbmi", "avx512vbmi"},
    {"x86_64", "avx512_vbmi2", "avx512vbmi2"},
    {"x86_64", "avx512_vnni", "avx512vnni"},
    {"x86_64", "avx512_bf16", "avx512bf16"},
    {"x86_64", "avx512_bitalg", "avx512bitalg"},
    {"x86_64", "avx512_vpopcntdq", "avx512vpopcntdq"},
    {"x86_64", "avx512_fp16", "avx512fp16"},
    {"aarch64", "fp", "fp-armv8"},
    {"aarch64", "asimd", "neon"},
    {"aarch64", "asimddp", "dotprod"},
    {"aarch64", "i8mm", "i8mm"},
    {"aarch64", "asimdhp", "fullfp16"},
    {"aarch64", "asimdfhm", "fp16fml"},
    {"aarch64", "asimdrdm", "rdm"},
    {"aarch64", "bf16", "bf16"},
    {"aarch64", "sve", "sve"},
    {"aarch64", "sve2", "sve2"},
    {"aarch64", "crc32", "crc"},
    {"aarch64", "aes", "aes"},
    {"aarch64", "sha2", "sha2"},
    {"aarch64", "atomics", "lse"},
    {"aarch64", "lrcpc", "rcpc"},
};

/* What we know about a CPU: its architecture, its flags as " f1 f2 ... " and the cpuinfo text
 * (for `host.cpuinfo` matches). */
typedef struct hostinfo {
  const char *arch;
  char *flags;
  const char *cpuinfo;
} hostinfo;

/* The value of the first "field : value" line of cpuinfo, into out (trimmed). */
static int cpuinfo_field(const char *cpuinfo, const char *field, char *out, size_t cap) {
  size_t flen = strlen(field);
  for (const char *p = cpuinfo; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, field, flen) != 0) continue;
    const char *q = p + flen;
    while (*q == ' ' || *q == '\t') q++;
    if (*q != ':') continue;
    q++;
    while (*q == ' ' || *q == '\t') q++;
    size_t n = strcspn(q, "\n");
    while (n && (q[n - 1] == ' ' || q[n - 1] == '\t' || q[n - 1] == '\r')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, q, n);
    out[n] = 0;
    return 0;
  }
  return -1;
}

static int hostinfo_init(hostinfo *h, const char *cpuinfo, const char *arch) {
  char *line = lb_malloc(16384);
  if (!line) return LB_ERR_NOMEM;
  h->arch = arch, h->cpuinfo = cpuinfo;
  if (cpuinfo_field(cpuinfo, "flags", line + 1, 16380) != 0 &&
      cpuinfo_field(cpuinfo, "Features", line + 1, 16380) != 0)
    line[1] = 0;
  line[0] = ' ';
  for (char *p = line; *p; p++)
    if (*p == '\t') *p = ' ';
  strcat(line, " ");
  h->flags = line;
  return 0;
}

static int has_flag(const hostinfo *h, const char *flag) {
  char pat[80];
  snprintf(pat, sizeof pat, " %s ", flag);
  return strstr(h->flags, pat) != NULL;
}

/* Removes flags starting with prefix (all of them when exact is 0) from h. */
static void drop_flags(hostinfo *h, const char *prefix, int exact) {
  char *w = h->flags;
  for (char *p = h->flags; *p;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (!n) break;
    int kill = exact ? n == strlen(prefix) && strncmp(p, prefix, n) == 0
                     : strncmp(p, prefix, strlen(prefix)) == 0;
    if (!kill) {
      *w++ = ' ';
      memmove(w, p, n);
      w += n;
    }
    p += n;
  }
  strcpy(w, " ");
}

/* x86: the CPU may report AVX/AVX-512 while the OS or hypervisor has not enabled their
 * register state; such code dies with SIGILL, so those flags do not count. */
static void filter_os_state(hostinfo *h) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  unsigned long long xcr0 = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((unsigned long long)hi << 32) | lo;
  }
  if ((xcr0 & 0x6) != 0x6) {
    static const char *const ymm[] = {"avx", "fma", "f16c", "vaes", "vpclmulqdq", "gfni"};
    for (size_t i = 0; i < sizeof ymm / sizeof ymm[0]; i++) drop_flags(h, ymm[i], i != 0);
  }
  if ((xcr0 & 0xe6) != 0xe6) drop_flags(h, "avx512", 0);
#else
  (void)h;
#endif
}

static const char *machine_arch(void) {
  static struct utsname u;
  if (uname(&u) != 0) return "unknown";
  return u.machine;
}

static char *read_cpuinfo(void) {
  FILE *f = fopen("/proc/cpuinfo", "rb");
  size_t cap = 1 << 20, n = 0;
  char *buf = lb_malloc(cap + 1);
  if (buf && f) n = fread(buf, 1, cap, f);
  if (f) fclose(f);
  if (buf) buf[n] = 0;
  return buf;
}

/* 1 if the comma list `list` holds exactly `item`. */
static int list_has(const char *list, const char *item) {
  size_t n = strlen(item);
  for (const char *p = list; p && *p;) {
    size_t len = strcspn(p, ",");
    if (len == n && strncmp(p, item, n) == 0) return 1;
    p += len + (p[len] == ',');
  }
  return 0;
}

/* "+f1,-f2,..." from h's flags, with the spec's own "-x" entries kept (features its codegen
 * must not use whatever the CPU has, e.g. -sve for a NEON-only spec). */
static char *feature_string(const hostinfo *h, const char *spec_features) {
  size_t cap = 64 + (spec_features ? strlen(spec_features) : 0), n = 0;
  for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) cap += strlen(features[i].llvm) + 2;
  char *s = lb_malloc(cap), minus[64];
  if (!s) return NULL;
  s[0] = 0;
  for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
    if (strcmp(features[i].arch, h->arch) != 0) continue;
    snprintf(minus, sizeof minus, "-%s", features[i].llvm);
    int on = has_flag(h, features[i].flag) && !list_has(spec_features, minus);
    n += (size_t)snprintf(s + n, cap - n, "%s%c%s", n ? "," : "", on ? '+' : '-',
                          features[i].llvm);
  }
  for (const char *p = spec_features; p && *p;) {
    size_t len = strcspn(p, ",");
    if (*p == '-' && len < sizeof minus) {
      snprintf(minus, sizeof minus, "%.*s", (int)len, p);
      if (!list_has(s, minus)) n += (size_t)snprintf(s + n, cap - n, "%s%s", n ? "," : "", minus);
    }
    p += len + (p[len] == ',');
  }
  return s;
}

char *lb_spec_host_features(const char *cpuinfo, const char *arch) {
  hostinfo h;
  if (hostinfo_init(&h, cpuinfo, arch)) return NULL;
  char *s = feature_string(&h, NULL);
  lb_free(h.flags);
  return s;
}

/* 0 if h can run code for s; else LB_ERR_INPUT naming what is missing. */
static int host_fits(const hostinfo *h, const lb_spec *s, lb_diag *d) {
  char val[256];
  if (!s->host_arch) {
    size_t n = strlen(h->arch);
    if (strncmp(s->triple, h->arch, n) == 0 && s->triple[n] == '-') return 0;
    return lb_diag_err(d, LB_ERR_INPUT, "spec '%s' targets %s, this machine is %s", s->name,
                       s->triple, h->arch);
  }
  if (strcmp(s->host_arch, h->arch) != 0)
    return lb_diag_err(d, LB_ERR_INPUT, "spec '%s' is for %s, this machine is %s", s->name,
                       s->host_arch, h->arch);
  for (size_t i = 0; i < s->n_requires; i++)
    if (!has_flag(h, s->host_requires[i]))
      return lb_diag_err(d, LB_ERR_INPUT, "spec '%s' requires the CPU feature '%s', which this "
                         "machine lacks", s->name, s->host_requires[i]);
  for (size_t i = 0; i < s->n_match; i++)
    if (cpuinfo_field(h->cpuinfo, s->host_match[2 * i], val, sizeof val) != 0 ||
        strcmp(val, s->host_match[2 * i + 1]) != 0)
      return lb_diag_err(d, LB_ERR_INPUT, "spec '%s' is for CPUs with %s '%s'", s->name,
                         s->host_match[2 * i], s->host_match[2 * i + 1]);
  return 0;
}

/* Higher is more specific: cpuinfo matches, then required features, then int8 speed. */
static int better(const lb_spec *a, const lb_spec *b) {
  if (!b) return 1;
  if (a->n_match != b->n_match) return a->n_match > b->n_match;
  if (a->n_requires != b->n_requires) return a->n_requires > b->n_requires;
  return lb_spec_int8_peak_macs(a) > lb_spec_int8_peak_macs(b);
}

/* Turns the chosen spec into the host spec: generic cpu, this CPU's features. */
static int make_host(const hostinfo *h, lb_spec *s, lb_diag *d) {
  char *f = feature_string(h, s->features);
  char desc[512];
  if (!f) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  s->features = lb_arena_strdup(&s->arena, f);
  lb_free(f);
  snprintf(desc, sizeof desc, "this machine (detected); costs from %s: %s", s->name,
           s->description);
  s->description = lb_arena_strdup(&s->arena, desc);
  s->cpu = s->host_cpu;
  s->is_host = 1;
  if (!s->features || !s->description) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  return 0;
}

static int pick(const hostinfo *h, lb_spec **out, lb_diag *d) {
  char **names;
  int n = lb_spec_list_names(&names, d), rc = 0;
  lb_spec *best = NULL;
  if (n < 0) return LB_ERR_INPUT;
  for (int i = 0; i < n && !rc; i++) {
    lb_spec *s;
    lb_diag quiet;
    lb_diag_clear(&quiet);
    if ((rc = lb_spec_load(names[i], &s, d))) break;
    if (s->host_arch && host_fits(h, s, &quiet) == 0 && better(s, best)) {
      lb_spec_free(best);
      best = s;
    } else {
      lb_spec_free(s);
    }
  }
  lb_spec_names_free(names, n);
  if (!rc && !best)
    rc = lb_diag_err(d, LB_ERR_INPUT, "no bundled spec in %s matches this CPU (%s); write one "
                     "with a host: section (specs/README.md)", lb_spec_dir(), h->arch);
  if (!rc) rc = make_host(h, best, d);
  if (rc) {
    lb_spec_free(best);
    return rc;
  }
  *out = best;
  return 0;
}

int lb_spec_load_host_from(const char *cpuinfo, const char *arch, lb_spec **out, lb_diag *d) {
  hostinfo h;
  if (hostinfo_init(&h, cpuinfo, arch)) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  int rc = pick(&h, out, d);
  lb_free(h.flags);
  return rc;
}

/* This machine, with the OS-state filter applied. */
static int this_host(hostinfo *h, char **cpuinfo, lb_diag *d) {
  if (!(*cpuinfo = read_cpuinfo())) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  if (hostinfo_init(h, *cpuinfo, machine_arch())) {
    lb_free(*cpuinfo);
    return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  }
  filter_os_state(h);
  return 0;
}

int lb_spec_host_load(lb_spec **out, lb_diag *d) {
  hostinfo h;
  char *cpuinfo;
  LB_TRY(this_host(&h, &cpuinfo, d));
  int rc = pick(&h, out, d);
  lb_free(h.flags);
  lb_free(cpuinfo);
  return rc;
}

int lb_spec_host_check(const lb_spec *s, lb_diag *d) {
  hostinfo h;
  char *cpuinfo;
  LB_TRY(this_host(&h, &cpuinfo, d));
  int rc = host_fits(&h, s, d);
  lb_free(h.flags);
  lb_free(cpuinfo);
  return rc;
}
