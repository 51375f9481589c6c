/*
 * slot_report: per bank slot status and the queue of changes between the
 * workers and the main thread. The lock is held only to copy a few hundred
 * bytes; the eventfd write never blocks (a full counter just stays readable).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "slot_report.h"

void slot_status_idle(struct slot_status *s, uint16_t slot_nr)
{
	memset(s, 0, sizeof(*s));
	s->slot_nr = slot_nr;
	s->worker_state = WorkerState_accepting;
	s->card_present = -1;
	s->phys.vcc_present = -1;
	s->phys.clk_active = -1;
	s->phys.card_present = -1;
}

int slot_report_init(struct slot_report *r, uint16_t num_slots)
{
	memset(r, 0, sizeof(*r));
	r->num_slots = num_slots;
	r->current = calloc(num_slots ? num_slots : 1, sizeof(*r->current));
	if (!r->current)
		return -ENOMEM;
	r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->wake_fd < 0) {
		free(r->current);
		return -errno;
	}
	for (uint16_t i = 0; i < num_slots; i++)
		slot_status_idle(&r->current[i], i);
	pthread_mutex_init(&r->lock, NULL);
	return 0;
}

void slot_report_destroy(struct slot_report *r)
{
	pthread_mutex_destroy(&r->lock);
	close(r->wake_fd);
	free(r->current);
	r->current = NULL;
}

static void slot_report_wake(struct slot_report *r)
{
	uint64_t one = 1;
	ssize_t n = write(r->wake_fd, &one, sizeof(one));

	(void)n;	/* EAGAIN: the counter is readable anyway */
}

void slot_report_post(struct slot_report *r, const struct slot_status *s)
{
	struct slot_status *cur;

	if (s->slot_nr >= r->num_slots)
		return;
	pthread_mutex_lock(&r->lock);
	cur = &r->current[s->slot_nr];
	{
		uint64_t count = cur->tpdu_count;

		*cur = *s;
		cur->tpdu_count = count;
	}
	if (r->count < SLOT_REPORT_QUEUE) {
		r->queue[(r->head + r->count) % SLOT_REPORT_QUEUE] = *cur;
		r->count++;
	} else {
		r->overflow = true;
	}
	pthread_mutex_unlock(&r->lock);
	slot_report_wake(r);
}

void slot_report_count_tpdu(struct slot_report *r, uint16_t slot_nr)
{
	if (slot_nr >= r->num_slots)
		return;
	pthread_mutex_lock(&r->lock);
	r->current[slot_nr].tpdu_count++;
	pthread_mutex_unlock(&r->lock);
}

size_t slot_report_take(struct slot_report *r, struct slot_status *out,
			size_t max, bool *all)
{
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	while (n < max && r->count) {
		out[n++] = r->queue[r->head];
		r->head = (r->head + 1) % SLOT_REPORT_QUEUE;
		r->count--;
	}
	*all = r->overflow;
	r->overflow = false;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void slot_report_snapshot(struct slot_report *r, struct slot_status *out)
{
	pthread_mutex_lock(&r->lock);
	memcpy(out, r->current, r->num_slots * sizeof(*out));
	pthread_mutex_unlock(&r->lock);
}

void slot_report_clear_wake(struct slot_report *r)
{
	uint64_t v;
	ssize_t n = read(r->wake_fd, &v, sizeof(v));

	(void)n;
}
