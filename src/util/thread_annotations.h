// Clang's thread-safety annotations (-Wthread-safety): which mutex guards a member, which a
// function needs held. Checked by the clang build (the fuzzers' build in CI, where a broken
// rule is an error); other compilers see nothing.
#pragma once

#if defined(__clang__)
#define SKERRY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SKERRY_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) SKERRY_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY SKERRY_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) SKERRY_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) SKERRY_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) SKERRY_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) SKERRY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) SKERRY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SKERRY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define EXCLUDES(...) SKERRY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) SKERRY_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS SKERRY_THREAD_ANNOTATION(no_thread_safety_analysis)
