/*
 * shmwarden's own YARA rules: a small set for what is dropped on tmpfs, written from public
 * facts (the ELF specification, UPX's own sources, the Stratum mining protocol, well-known
 * reverse-shell one-liners). Each rule states what it saw in the bytes, not what the file is.
 * Install: copy to /etc/shmwarden/yara/ and set `yara: {rules: [/etc/shmwarden/yara]}`.
 */

rule shmwarden_elf_without_section_headers : packer anomaly
{
    meta:
        description = "ELF file with no section header table (e_shoff or e_shnum is 0), as packers and hand-stripped droppers leave it; the kernel runs such files, compilers and linkers do not produce them"
        author = "shmwarden"
        reference = "https://refspecs.linuxfoundation.org/elf/gabi4+/ch4.eheader.html"
        attack = "T1027.002"

    condition:
        uint32(0) == 0x464c457f and
        (
            // ELFCLASS64: e_shoff is 8 bytes at 0x28, e_shnum 2 bytes at 0x3c
            (uint8(4) == 2 and ((uint32(0x28) == 0 and uint32(0x2c) == 0) or uint16(0x3c) == 0)) or
            // ELFCLASS32: e_shoff is 4 bytes at 0x20, e_shnum 2 bytes at 0x30
            (uint8(4) == 1 and (uint32(0x20) == 0 or uint16(0x30) == 0))
        )
}

rule shmwarden_upx_packed : packer
{
    meta:
        description = "ELF file carrying UPX's markers: the UPX! packheader magic and UPX's own notice or section names"
        author = "shmwarden"
        reference = "https://github.com/upx/upx/blob/devel/src/packer.cpp"
        attack = "T1027.002"

    strings:
        $magic = "UPX!"
        $notice = "This file is packed with the UPX executable packer"
        $section0 = "UPX0"
        $section1 = "UPX1"

    condition:
        uint32(0) == 0x464c457f and $magic and ($notice or ($section0 and $section1))
}

rule shmwarden_miner_pool_url : miner
{
    meta:
        description = "Contains a Stratum mining pool URL (stratum+tcp://, stratum+ssl://, stratum2+tcp://), the scheme cryptocurrency miners connect to their pool with"
        author = "shmwarden"
        reference = "https://attack.mitre.org/techniques/T1496/"
        attack = "T1496"

    strings:
        $tcp = "stratum+tcp://" ascii wide nocase
        $ssl = "stratum+ssl://" ascii wide nocase
        $tls = "stratum+tls://" ascii wide nocase
        $v2 = "stratum2+tcp://" ascii wide nocase

    condition:
        any of them
}

rule shmwarden_reverse_shell_oneliner : reverse_shell
{
    meta:
        description = "Contains a well-known reverse-shell one-liner: a shell attached to a network connection through /dev/tcp, nc -e, a named pipe, or a socket in Python, Perl or PHP"
        author = "shmwarden"
        reference = "https://attack.mitre.org/techniques/T1059/004/"
        attack = "T1059.004"

    strings:
        $dev_tcp = /(ba|z|k)?sh -i [<>&0-9 ]{0,8}\/dev\/(tcp|udp)\/[^\s\/]{1,253}\/[0-9]{1,5}/
        $dev_tcp_exec = /exec [0-9]{1,2}<>\/dev\/(tcp|udp)\//
        $nc_e = /\bn(c|cat|etcat)(\.[a-z]+)? [^\n|;]{0,80}-(e|c) ?\/bin\/(ba)?sh/
        $fifo = /mkfifo [^\s;]{1,200}; ?(cat|tail -f) [^\s|]{1,200} ?\| ?\/bin\/(ba)?sh -i/
        $python = /socket\.socket\([^\n]{0,200}\.connect\(\([^\n]{0,300}(pty\.spawn|subprocess\.call|os\.dup2)/
        $perl = /use Socket;[^\n]{0,300}connect\([^\n]{0,300}exec\(?["']\/bin\/(ba)?sh/
        $php = /fsockopen\([^\n]{0,200}(exec|shell_exec|system|passthru|proc_open)\(["']\/bin\/(ba)?sh/
        $socat = /socat [^\n]{0,100}exec:['"]?(ba)?sh[^\n]{0,60}tcp[46]?:/ nocase
        $socat_connect = /socat [^\n]{0,100}tcp[46]?(-connect)?:[^\n]{0,100}exec:['"]?(ba)?sh/ nocase

    condition:
        any of them
}
