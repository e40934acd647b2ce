"""Kernel UAPI structures and constants that libbpf's API hands through (linux/bpf.h, linux/btf.h)."""
import ctypes as C

BPF_STATS_RUN_TIME = 0
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_OBJ_NAME_LEN = 16

# BTF kinds (linux/btf.h)
BTF_KIND = {1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum", 7: "fwd",
            8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func",
            13: "func_proto", 14: "var", 15: "datasec", 16: "float", 17: "decl_tag",
            18: "type_tag", 19: "enum64"}
BTF_INT_SIGNED, BTF_INT_CHAR, BTF_INT_BOOL = 1, 2, 4


class btf_type(C.Structure):
    _fields_ = [("name_off", C.c_uint32), ("info", C.c_uint32), ("size_or_type", C.c_uint32)]


class btf_array(C.Structure):
    _fields_ = [("type", C.c_uint32), ("index_type", C.c_uint32), ("nelems", C.c_uint32)]


class btf_member(C.Structure):
    _fields_ = [("name_off", C.c_uint32), ("type", C.c_uint32), ("offset", C.c_uint32)]


class btf_enum(C.Structure):
    _fields_ = [("name_off", C.c_uint32), ("val", C.c_int32)]


class btf_enum64(C.Structure):
    _fields_ = [("name_off", C.c_uint32), ("val_lo32", C.c_uint32), ("val_hi32", C.c_uint32)]


class btf_var_secinfo(C.Structure):
    _fields_ = [("type", C.c_uint32), ("offset", C.c_uint32), ("size", C.c_uint32)]


class bpf_prog_info(C.Structure):
    _fields_ = [
        ("type", C.c_uint32), ("id", C.c_uint32), ("tag", C.c_uint8 * 8),
        ("jited_prog_len", C.c_uint32), ("xlated_prog_len", C.c_uint32),
        ("jited_prog_insns", C.c_uint64), ("xlated_prog_insns", C.c_uint64),
        ("load_time", C.c_uint64), ("created_by_uid", C.c_uint32), ("nr_map_ids", C.c_uint32),
        ("map_ids", C.c_uint64), ("name", C.c_char * BPF_OBJ_NAME_LEN), ("ifindex", C.c_uint32),
        ("gpl_compatible", C.c_uint32), ("netns_dev", C.c_uint64), ("netns_ino", C.c_uint64),
        ("nr_jited_ksyms", C.c_uint32), ("nr_jited_func_lens", C.c_uint32),
        ("jited_ksyms", C.c_uint64), ("jited_func_lens", C.c_uint64), ("btf_id", C.c_uint32),
        ("func_info_rec_size", C.c_uint32), ("func_info", C.c_uint64),
        ("nr_func_info", C.c_uint32), ("nr_line_info", C.c_uint32), ("line_info", C.c_uint64),
        ("jited_line_info", C.c_uint64), ("nr_jited_line_info", C.c_uint32),
        ("line_info_rec_size", C.c_uint32), ("jited_line_info_rec_size", C.c_uint32),
        ("nr_prog_tags", C.c_uint32), ("prog_tags", C.c_uint64), ("run_time_ns", C.c_uint64),
        ("run_cnt", C.c_uint64), ("recursion_misses", C.c_uint64),
        ("verified_insns", C.c_uint32), ("attach_btf_obj_id", C.c_uint32),
        ("attach_btf_id", C.c_uint32), ("_pad", C.c_uint32),
    ]


class bpf_map_batch_opts(C.Structure):
    _fields_ = [("sz", C.c_size_t), ("elem_flags", C.c_uint64), ("flags", C.c_uint64)]
