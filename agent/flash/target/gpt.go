package target

import (
	"errors"
	"fmt"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// GPTResult says what FixGPT did.
type GPTResult struct {
	Moved   bool   // the backup header now sits at the end of the target
	Grown   string // name or index of the partition grown, "" if none
	OldLast uint64 // last usable sector before the fix-up
	NewLast uint64
}

// FixGPT moves the backup GPT of an image written to a larger target to the target's end,
// where firmware and tools look for it, and optionally grows the last partition into the new
// space. A target without a GPT, or whose GPT already ends at the target's end, is left as is.
// Call it after the image, first MiB included, is written and synced.
func (t *Target) FixGPT(grow bool) (GPTResult, error) {
	var res GPTResult
	size := t.size
	if t.Kind == File {
		fi, err := t.buffered.Stat()
		if err != nil {
			return res, fmt.Errorf("gpt fix-up: %w", err)
		}
		size = fi.Size()
	}
	ss := int64(t.sectorSize)
	if !t.hasGPT() {
		return res, nil
	}
	tbl, err := gpt.Read(t.buffered, t.sectorSize, t.sectorSize)
	if err != nil {
		return res, fmt.Errorf("gpt fix-up: read: %w", err)
	}
	res.OldLast = tbl.LastDataSector()
	oldBackup := tbl.TotalSize()/uint64(ss) - 1 // TotalSize runs to the end of the backup header
	if err := tbl.Verify(t.buffered, uint64(size/ss*ss)); err == nil && !grow {
		res.NewLast = res.OldLast
		return res, nil
	}
	tbl.Resize(uint64(size / ss * ss))
	res.NewLast = tbl.LastDataSector()
	if res.NewLast < res.OldLast {
		return res, errors.New("gpt fix-up: the partition table describes a disk larger than the target")
	}
	if grow {
		var last *gpt.Partition
		for _, p := range tbl.Partitions {
			if p == nil || p.Start == 0 && p.End == 0 {
				continue
			}
			if last == nil || p.End > last.End {
				last = p
			}
		}
		if last != nil && last.End < res.NewLast {
			last.End = res.NewLast
			last.Size = (last.End - last.Start + 1) * uint64(ss)
			res.Grown = last.Name
			if res.Grown == "" {
				res.Grown = fmt.Sprint(last.Index)
			}
		}
	}
	if err := tbl.Write(t.buffered, size); err != nil {
		return res, fmt.Errorf("gpt fix-up: write: %w", err)
	}
	res.Moved = true
	// The stale backup header left in the middle of the disk would confuse recovery tools
	// into picking an outdated table; clear it unless it is the new one.
	if int64(oldBackup) < size/ss-1 && t.sectorIsGPTHeader(int64(oldBackup)) {
		zero := make([]byte, ss)
		if _, err := t.buffered.WriteAt(zero, int64(oldBackup)*ss); err != nil {
			return res, fmt.Errorf("gpt fix-up: clear old backup header: %w", err)
		}
	}
	if err := t.buffered.Sync(); err != nil {
		return res, fmt.Errorf("gpt fix-up: %w", err)
	}
	return res, nil
}

// hasGPT looks for the "EFI PART" signature at LBA 1.
func (t *Target) hasGPT() bool { return t.sectorIsGPTHeader(1) }

func (t *Target) sectorIsGPTHeader(lba int64) bool {
	b := make([]byte, 8)
	if _, err := t.buffered.ReadAt(b, lba*int64(t.sectorSize)); err != nil {
		return false
	}
	return string(b) == "EFI PART"
}
