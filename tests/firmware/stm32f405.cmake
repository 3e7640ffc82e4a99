# QEMU tests of the firmware on the Netduino Plus 2 board (STM32F405, Cortex-M4F; QEMU
# netduinoplus2), included by tests/firmware/CMakeLists.txt when TINYZO_FW_BOARD=stm32f405
# (scripts/fw_test.sh ... stm32f405). The image tz_128k is linked into the part's real memory map:
# vector table and code in the 1 MB flash at 0x08000000, static data and the whole tinyzo arena in
# the 128 KB main SRAM at 0x20000000, the stack at the bottom of main SRAM (TINYZO_FW_STACK=ram, the
# default: QEMU 7.2 maps no CCM) or of the 64 KB CCM at 0x10000000 (=ccm; ld/stm32f405.ld).
if(TINYZO_FW_FUSE)
  # The fused engine: the paper's 128x128 model; the paper's 2 WP + 2 NP set fits with one layer
  # per pass over the batch, in one pass it must not link (firmware/CMakeLists.txt).
  set(tz_b stm32f405-fused)
  set(tz_layers paper passes=layer)
  set(tz_over tz_paper_128k)
else()
  set(tz_b stm32f405)
  set(tz_layers paper)
  set(tz_over tz_dense_128k)
endif()
if(NOT TARGET tz_128k OR NOT TARGET ${tz_over})
  message(STATUS "firmware tests (stm32f405): need the default images (TINYZO_FW_IMAGES / _OVERSIZED changed): no tests")
  return()
endif()
set(tz_case ${CMAKE_CURRENT_SOURCE_DIR}/../../scripts/fw_case.sh)
set(tz_data ${CMAKE_BINARY_DIR}/test-data)
set(tz_args --tool ${TINYZO_HOST_TOOL} --model ${TZ_MODEL} --machine ${TZ_BOARD_MACHINE}
    --work ${CMAKE_BINARY_DIR}/test-out --timeout 240)
set(tz_128k $<TARGET_FILE:tz_128k>)
file(MAKE_DIRECTORY ${tz_data})

# Sample streams for the embedded model's input (64x64 by default: tinyzo fw-data resizes and crops
# for the model it is given).
add_test(NAME fw.${tz_b}.data COMMAND ${TINYZO_HOST_TOOL} fw-data --model ${TZ_MODEL} -o ${tz_data}/clean4.bin -n 4)
add_test(NAME fw.${tz_b}.data_train
  COMMAND ${TINYZO_HOST_TOOL} fw-data --model ${TZ_MODEL} --split train -o ${tz_data}/gn_train8.bin -n 8)
set_tests_properties(fw.${tz_b}.data fw.${tz_b}.data_train PROPERTIES FIXTURES_SETUP fw_data_${tz_b})

# Boot on the part's map: reset through the flash alias, VTOR at flash, the stack where configured, the DSP
# kernels; the clock line says how far the RCC answered (QEMU 7.2 models none of it).
if(TINYZO_FW_STACK STREQUAL "ccm")
  set(tz_stack "stack \\[0x10000000, 0x10001200\\).*stack_in=ccm ")
else()
  set(tz_stack "stack \\[0x20000000, 0x20001200\\).*stack_in=ram ")
endif()
add_test(NAME fw.${tz_b}.boot_memory_map COMMAND ${TZ_QEMU} --machine ${TZ_BOARD_MACHINE} --timeout 60 ${tz_128k} info)
set_tests_properties(fw.${tz_b}.boot_memory_map PROPERTIES PASS_REGULAR_EXPRESSION
  "kernels: armv7em-dsp.*clock: [^;]+; flash at 0x8000000, RAM at 0x20000000, ${tz_stack}")

# (a) inference: device logits == host logits.
add_test(NAME fw.${tz_b}.infer_bitexact COMMAND ${tz_case} ${tz_args} infer ${tz_128k} ${tz_data}/clean4.bin 4)
# (b) sparse ZO of the paper's layer set (WP 1.4/1.5.conv.0, NP 1.6/1.7.conv.0) with the paper's
# query counts (25 + 25 WP, 50 NP), two steps of batch 1: the weights, both losses and the exported
# .tzm bit for bit with the host; the job's main-SRAM peak within 128 KB (fw_case.sh checks the MEM line).
add_test(NAME fw.${tz_b}.sparse_paper_128k_bitexact
  COMMAND ${tz_case} ${tz_args} train ${tz_128k} ${tz_data}/gn_train8.bin
          layers=${tz_layers} steps=2 batch=1 qw=25 qb=25 qnp=50 lr=0.05 seed=7)
# The same set at small query counts over more samples (2 steps x 2 samples).
add_test(NAME fw.${tz_b}.sparse_paper_small_q_bitexact
  COMMAND ${tz_case} ${tz_args} train ${tz_128k} ${tz_data}/gn_train8.bin
          layers=${tz_layers} steps=2 batch=2 qw=2 qb=2 qnp=4 seed=3)
set_tests_properties(fw.${tz_b}.infer_bitexact fw.${tz_b}.sparse_paper_128k_bitexact
  fw.${tz_b}.sparse_paper_small_q_bitexact PROPERTIES FIXTURES_REQUIRED fw_data_${tz_b})
# The MPU: a stack overflow out of CCM hits the guard below 0x10000000; writes to flash fault.
add_test(NAME fw.${tz_b}.fault_stack_guard COMMAND ${tz_case} ${tz_args} fault ${tz_128k} fault-stack)
add_test(NAME fw.${tz_b}.fault_flash_readonly COMMAND ${tz_case} ${tz_args} fault ${tz_128k} fault-flash)
# Dense ZO of every conv (fused: the paper's 2 WP + 2 NP set at 128x128) does not fit the 128 KB
# main SRAM: the link must fail.
add_test(NAME fw.${tz_b}.oversized_fails_to_link COMMAND ${tz_case} link-fails ${CMAKE_BINARY_DIR} ${tz_over})
set_tests_properties(fw.${tz_b}.oversized_fails_to_link PROPERTIES RUN_SERIAL TRUE)

get_property(tz_tests DIRECTORY PROPERTY TESTS)
set_tests_properties(${tz_tests} PROPERTIES TIMEOUT 300)
