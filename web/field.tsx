// A labelled form control bound to a string: the one way the console's forms take text.
/// <reference lib="dom" />
import type { InputHTMLAttributes, TextareaHTMLAttributes } from "preact";

interface Bound {
  label: string;
  value: string;
  onValue: (value: string) => void;
  class?: string;
  name?: string;
  required?: boolean;
  minLength?: number;
  maxLength?: number;
}

interface InputOptions extends Bound {
  type?: "text" | "email" | "password" | "number";
  autocomplete?: string;
  inputMode?: "decimal" | "numeric" | "text";
  min?: number;
  max?: number;
}

export function Field(props: InputOptions) {
  const { label, value, onValue, class: className, ...input } = props;
  return (
    <label class={className}>
      {label}
      <input
        {...input as InputHTMLAttributes<HTMLInputElement>}
        value={value}
        onInput={(e) => onValue(e.currentTarget.value)}
      />
    </label>
  );
}

export function TextArea(props: Bound) {
  const { label, value, onValue, class: className, ...area } = props;
  return (
    <label class={className}>
      {label}
      <textarea
        {...area as TextareaHTMLAttributes<HTMLTextAreaElement>}
        value={value}
        onInput={(e) => onValue(e.currentTarget.value)}
      />
    </label>
  );
}
