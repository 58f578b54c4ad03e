// A member's picture beside their name: their photo, or their initials (GET /api/users/:id/avatar
// answers one or the other). Decorative: the name beside it says who it is.
/// <reference lib="dom" />

export function Avatar(props: { id: string; size?: number }) {
  const size = props.size ?? 28;
  return (
    <img
      class="avatar-sm"
      src={`/api/users/${encodeURIComponent(props.id)}/avatar`}
      alt=""
      width={size}
      height={size}
      loading="lazy"
      data-testid="avatar"
    />
  );
}
