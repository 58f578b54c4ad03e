// The shapes many routes answer with (problems, pages, users, posts), named once so the reference
// shows each as one component.
import { z } from "zod";
import {
  CONNECTION_STATUSES,
  GENDERS,
  INTERVIEW_STATES,
  MATCH_OUTCOMES,
  ORDER_STATUSES,
  RESERVATION_STATUSES,
  ROLES,
} from "../../db/schema.ts";
import { SALE_STATUSES } from "../../db/records.ts";
import { attachment, foundMatch, notification, person, timestamp } from "../../realtime/events.ts";

export { timestamp };

export const fieldError = z.object({
  path: z.string().meta({ description: "Dotted path of the field (`rubric.0.criterion`)." }),
  message: z.string(),
});

/** RFC 9457 problem details, as every error is answered. */
export const problem = z.looseObject({
  type: z.string().meta({ description: "`/problems/<code>`" }),
  code: z.string().meta({ description: "What went wrong, for programs (`sold-out`)." }),
  title: z.string(),
  status: z.int(),
  detail: z.string().meta({ description: "What went wrong, for people." }),
  errors: z.array(fieldError).optional().meta({ description: "Each field at fault (400)." }),
  ref: z.string().optional().meta({ description: "A 500's reference, to quote." }),
  retryAfter: z.int().optional().meta({ description: "Seconds (429)." }),
}).meta({
  id: "Problem",
  examples: [{
    type: "/problems/invalid-request",
    code: "invalid-request",
    title: "Invalid request",
    status: 400,
    detail: "The body is invalid.",
    errors: [{ path: "email", message: "Invalid email address" }],
  }],
});

/** A page of a list: `nextCursor` is null on the last page. */
export function page<S extends z.ZodType>(item: S) {
  return z.object({
    items: z.array(item),
    nextCursor: z.string().nullable().meta({ description: "Pass back as `?cursor=`." }),
  });
}

const nullableTime = timestamp.nullable();
const money = { amountCents: z.int(), currency: z.string().meta({ examples: ["USD"] }) };

export { foundMatch, notification, person };

const mediaRef = z.object({ id: z.string(), url: z.string() }).meta({ id: "MediaRef" });

/** What any member may see of another. */
export const profile = z.object({
  id: z.string(),
  name: z.string(),
  headline: z.string().nullable(),
  bio: z.string().nullable(),
  skills: z.array(z.string()),
  location: z.string().nullable(),
  verifiedSkills: z.array(
    z.object({ skill: z.string(), verifiedAt: timestamp, interviewId: z.string() }),
  ).meta({ description: "Skills proven in a scored interview." }),
  avatarMediaId: z.string().nullable(),
  avatarUrl: z.string().nullable(),
  videoMediaId: z.string().nullable(),
  videoUrl: z.string().nullable().meta({ description: "The profile's video (MP4 or WebM)." }),
  createdAt: timestamp,
}).meta({ id: "Profile" });

/** The signed-in user's own account. */
export const user = profile.extend({
  email: z.email(),
  emailVerified: z.boolean().meta({
    description: "Whether the address is confirmed (see what waits on it in docs/resources.md).",
  }),
  confirmationNeeded: z.boolean().meta({
    description:
      "True while the unconfirmed address holds things back (EMAIL_VERIFICATION=required): matching, selling, more than 5 connection requests.",
  }),
  pendingEmail: z.string().nullable().meta({
    description: "A new address asked for, until its link is opened.",
  }),
  gender: z.enum(GENDERS),
  role: z.enum(ROLES),
  membership: z.object({ tier: z.string(), since: nullableTime }).nullable(),
}).meta({
  id: "User",
  examples: [{
    id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    name: "Ada Lovelace",
    headline: "Engines and notes",
    bio: null,
    skills: ["typescript"],
    location: "London",
    verifiedSkills: [],
    avatarMediaId: null,
    avatarUrl: null,
    videoMediaId: null,
    videoUrl: null,
    createdAt: "2026-12-02T15:04:05.000Z",
    email: "ada@example.com",
    emailVerified: true,
    confirmationNeeded: false,
    pendingEmail: null,
    gender: "female",
    role: "user",
    membership: null,
  }],
});

export const session = z.object({
  user,
  token: z.string().meta({ description: "A JWT for `Authorization: Bearer`." }),
}).meta({ id: "Session" });

export const post = z.object({
  id: z.string(),
  author: person,
  text: z.string(),
  mediaIds: z.array(z.string()),
  media: z.array(mediaRef),
  likeCount: z.int(),
  commentCount: z.int(),
  likedByMe: z.boolean(),
  createdAt: timestamp,
  updatedAt: timestamp,
}).meta({ id: "Post" });

export const connectionRequest = z.object({
  id: z.string(),
  fromUserId: z.string(),
  toUserId: z.string(),
  message: z.string().nullable(),
  status: z.enum(CONNECTION_STATUSES),
  version: z.int(),
  createdAt: timestamp,
  updatedAt: timestamp,
}).meta({ id: "ConnectionRequest" });

export const message = z.object({
  id: z.string(),
  conversationId: z.string(),
  from: z.string().meta({ description: "The sender's user id." }),
  text: z.string().meta({ description: "Empty when the message is only attachments." }),
  createdAt: timestamp,
  readAt: nullableTime.meta({
    description: "When the other participant read it; null until then (a receipt never goes back).",
  }),
  attachments: z.array(attachment),
}).meta({ id: "Message" });

export const interview = z.object({
  id: z.string(),
  interviewerId: z.string(),
  candidateId: z.string(),
  skill: z.string(),
  prompt: z.string().nullable().meta({ description: "Hidden from the candidate until started." }),
  promptHidden: z.boolean(),
  rubric: z.array(z.object({ criterion: z.string(), weight: z.number() })),
  timeLimitMinutes: z.int(),
  state: z.enum(INTERVIEW_STATES),
  version: z.int(),
  answer: z.string().nullable(),
  mediaIds: z.array(z.string()),
  media: z.array(mediaRef),
  metrics: z.object({
    wordCount: z.int(),
    answerLength: z.int(),
    rubricCoverage: z.number(),
    criteriaMentioned: z.array(z.string()),
  }).nullable().meta({ description: "Computed by a background job after submission." }),
  scores: z.array(z.object({ criterion: z.string(), score: z.number() })).nullable(),
  feedback: z.string().nullable(),
  weightedScore: z.number().nullable(),
  passed: z.boolean().nullable(),
  passMark: z.number(),
  createdAt: timestamp,
  updatedAt: timestamp,
  startedAt: nullableTime,
  expiresAt: nullableTime,
  submittedAt: nullableTime,
  scoredAt: nullableTime,
  actions: z.array(z.string()).meta({ description: "What the caller may do next." }),
}).meta({ id: "Interview" });

/** A match as one participant sees it. */
export const match = foundMatch.extend({
  id: z.string(),
  state: z.enum(["live", "ended"]),
  endedAt: nullableTime,
  outcome: z.enum(MATCH_OUTCOMES).nullable(),
  connected: z.boolean(),
  consent: z.enum(["you", "peer", "both"]).meta({
    description: "Whose consent `connect` and `video-approve` need.",
  }),
  connectAsked: z.object({ you: z.boolean(), peer: z.boolean() }),
  video: z.object({
    requestedBy: z.string().nullable(),
    approved: z.boolean(),
    approvedAt: nullableTime,
  }),
}).meta({ id: "Match" });

export const sale = z.object({
  id: z.string(),
  status: z.enum(SALE_STATUSES),
  startsAt: timestamp,
  endsAt: timestamp,
  perUserLimit: z.int(),
  items: z.array(z.object({
    productId: z.string(),
    name: z.string(),
    priceCents: z.int(),
    currency: z.string(),
    stock: z.int(),
    stockRemaining: z.int(),
  })),
}).meta({ id: "Sale" });

export const reservation = z.object({
  id: z.string(),
  saleId: z.string(),
  productId: z.string(),
  quantity: z.int(),
  ...money,
  status: z.enum(RESERVATION_STATUSES),
  orderId: z.string().nullable(),
  expiresAt: timestamp,
  createdAt: timestamp,
}).meta({ id: "Reservation" });

export const order = z.object({
  id: z.string(),
  kind: z.enum(["reservation", "membership"]),
  status: z.enum(ORDER_STATUSES),
  description: z.string(),
  ...money,
  reservationId: z.string().nullable(),
  tier: z.string().nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
  paidAt: nullableTime,
  refundedAt: nullableTime,
}).meta({ id: "Order" });

export const paymentStart = z.object({
  orderId: z.string(),
  paymentUrl: z.string().meta({ description: "Where the buyer pays (the sandbox page locally)." }),
}).meta({ id: "PaymentStart" });

export const report = z.object({
  id: z.string(),
  reporterId: z.string(),
  userId: z.string(),
  postId: z.string().nullable(),
  reason: z.string(),
  createdAt: timestamp,
  /** An admin's resolution, once there is one. */
  resolution: z.object({ at: timestamp, by: z.string().nullable(), note: z.string().nullable() })
    .nullable(),
}).meta({ id: "Report" });
