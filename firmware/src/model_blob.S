/* The .tzm model, embedded at build time (never committed: the build imports
   it from the data directory). TZ_MODEL_PATH is the quoted path of the file.
   Section .tinyzo_model goes to flash (firmware/ld/mps2.ld, 16-byte aligned as
   ModelView requires); the symbols bound it. */
  .section .tinyzo_model, "a", %progbits
  .balign 16
  .global tz_model_start
tz_model_start:
  .incbin TZ_MODEL_PATH
  .global tz_model_end
tz_model_end:
  .balign 16
