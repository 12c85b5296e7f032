/**
 * Home Assistant's MQTT discovery schemas for the entity types the agent publishes, transcribed from Home
 * Assistant core's voluptuous schemas (homeassistant/components/mqtt: schemas.py for availability, device and
 * origin; entity.py's MQTT_ENTITY_COMMON_SCHEMA; sensor.py, image.py, button.py), as of 2025.10 and later.
 * Strict: Home Assistant drops a key it does not know without a word (REMOVE_EXTRA), so a misspelt or
 * deprecated key (`object_id` since 2025.10) fails here instead of being silently ignored there.
 */
import { z } from "zod";

const template = z.string().min(1);
const topic = z
  .string()
  .min(1)
  .refine((t) => !t.includes("#") && !t.includes("+"), "a topic, no wildcard");
const subscribeTopic = z.string().min(1);

const availabilityEntry = z
  .object({
    topic: subscribeTopic,
    payload_available: z.string().optional(),
    payload_not_available: z.string().optional(),
    value_template: template.optional(),
  })
  .strict();

const device = z
  .object({
    identifiers: z.array(z.string()).min(1),
    connections: z.array(z.tuple([z.string(), z.string()])).optional(),
    manufacturer: z.string().optional(),
    model: z.string().optional(),
    name: z.string().optional(),
    hw_version: z.string().optional(),
    serial_number: z.string().optional(),
    sw_version: z.string().optional(),
    via_device: z.string().optional(),
    suggested_area: z.string().optional(),
    configuration_url: z.string().url().optional(),
  })
  .strict();

const origin = z
  .object({ name: z.string(), sw_version: z.string().optional(), support_url: z.string().url().optional() })
  .strict();

/** MQTT_ENTITY_COMMON_SCHEMA with the availability schemas and MQTT_BASE_SCHEMA (qos, encoding). */
const common = {
  availability_topic: subscribeTopic.optional(),
  availability_template: template.optional(),
  payload_available: z.string().optional(),
  payload_not_available: z.string().optional(),
  availability: z.array(availabilityEntry).min(1).optional(),
  availability_mode: z.enum(["all", "any", "latest"]).optional(),
  device: device.optional(),
  origin: origin.optional(),
  enabled_by_default: z.boolean().optional(),
  entity_category: z.enum(["config", "diagnostic"]).optional(),
  entity_picture: z.string().url().optional(),
  icon: z
    .string()
    .regex(/^[a-z0-9-]+:[a-z0-9-]+$/)
    .optional(),
  json_attributes_topic: subscribeTopic.optional(),
  json_attributes_template: template.optional(),
  unique_id: z.string().optional(),
  default_entity_id: z.string().optional(),
  name: z.string().nullable().optional(),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
  encoding: z.string().optional(),
};

const SENSOR_DEVICE_CLASSES = ["enum", "timestamp", "date", "duration"] as const;

const sensor = z
  .object({
    ...common,
    state_topic: subscribeTopic,
    value_template: template.optional(),
    device_class: z.enum(SENSOR_DEVICE_CLASSES).optional(),
    options: z.array(z.string()).min(1).optional(),
    state_class: z.enum(["measurement", "total", "total_increasing"]).optional(),
    unit_of_measurement: z.string().optional(),
    expire_after: z.number().int().nonnegative().optional(),
    force_update: z.boolean().optional(),
    suggested_display_precision: z.number().int().nonnegative().optional(),
  })
  .strict()
  // sensor.py validate_sensor_state_and_device_class_config: options only with (and required by) enum.
  .refine(
    (c) => (c.device_class === "enum") === (c.options !== undefined),
    "options go with device_class enum",
  )
  .refine(
    (c) => c.device_class !== "enum" || (c.state_class === undefined && c.unit_of_measurement === undefined),
    "an enum sensor has no state_class or unit",
  );

const image = z
  .object({
    ...common,
    image_topic: subscribeTopic.optional(),
    url_topic: subscribeTopic.optional(),
    url_template: template.optional(),
    content_type: z.string().optional(),
    image_encoding: z.literal("b64").optional(),
  })
  .strict()
  .refine(
    (c) => (c.image_topic === undefined) !== (c.url_topic === undefined),
    "one of image_topic, url_topic",
  )
  .refine(
    (c) => c.content_type === undefined || c.url_topic === undefined,
    "content_type not with url_topic",
  );

const button = z
  .object({
    ...common,
    command_topic: topic,
    command_template: template.optional(),
    payload_press: z.string().optional(),
    retain: z.boolean().optional(),
    device_class: z.enum(["identify", "restart", "update"]).optional(),
  })
  .strict();

/** A discovery config checked as Home Assistant checks one of `component`; availability keys are exclusive. */
export function checkDiscoveryConfig(component: string, config: unknown): string[] {
  const schema = { sensor, image, button }[component];
  if (!schema) return [`no schema here for ${component}`];
  const result = schema.safeParse(config);
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => `${issue.path.join(".") || "(config)"}: ${issue.message}`);
  const c = config as Record<string, unknown>;
  if (c["availability_topic"] !== undefined && c["availability"] !== undefined)
    problems.push("availability_topic and availability are exclusive");
  const id = c["default_entity_id"];
  if (typeof id === "string" && !new RegExp(`^${component}\\.[a-z0-9_]+$`).test(id))
    problems.push(`default_entity_id: ${id} is no ${component} entity id`);
  return problems;
}
