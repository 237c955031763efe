// Photos, audio and video uploaded by terminals (0x0801), in a GridFS bucket `media` as the
// seed's storage design asks (files + chunks collections: MongoDB and FerretDB both hold them).
// The file id is derived from the vehicle, the terminal's media id and the content, so a
// retransmitted upload is stored once while a terminal that reuses media ids after a reboot
// does not overwrite an earlier photo.
import { createHash } from 'node:crypto';
import { GridFSBucket, type Db, type ObjectId } from 'mongodb';
import type { LocationReport } from '../jt808/location.js';
import { DURABLE_WRITE_CONCERN } from './schema.js';

export const MEDIA_BUCKET = 'media';

export interface MediaUpload {
  vehicleId: string;
  mediaId: number;
  /** 0 image, 1 audio, 2 video. */
  mediaType: number;
  /** 0 JPEG, 1 TIF, 2 MP3, 3 WAV, 4 WMV. */
  format: number;
  event: number;
  channel: number;
  location?: LocationReport;
  receivedAt: number;
  data: Uint8Array;
}

const EXTENSIONS = ['jpg', 'tif', 'mp3', 'wav', 'wmv'];

export interface MediaStoreOptions {
  /** Attempts before a save gives up (the terminal then uploads again). */
  attempts?: number;
  retryBaseMs?: number;
}

/** GridFS accepts any _id; the driver's types only say ObjectId. */
const asFileId = (id: string): ObjectId => id as unknown as ObjectId;

export class MediaStore {
  readonly stats = { stored: 0, duplicates: 0, failed: 0, retries: 0, bytes: 0 };
  private readonly bucket: GridFSBucket;

  constructor(
    private readonly db: Db,
    private readonly options: MediaStoreOptions = {},
  ) {
    this.bucket = new GridFSBucket(db, {
      bucketName: MEDIA_BUCKET,
      writeConcern: DURABLE_WRITE_CONCERN,
    });
  }

  static fileId(m: Pick<MediaUpload, 'vehicleId' | 'mediaId' | 'data'>): string {
    const digest = createHash('sha256').update(m.data).digest('hex').slice(0, 16);
    return `${m.vehicleId}:${m.mediaId}:${digest}`;
  }

  /** Stores the upload (retried with backoff); 'duplicate' when it was already stored. */
  async save(m: MediaUpload): Promise<{ id: string; outcome: 'stored' | 'duplicate' }> {
    const id = MediaStore.fileId(m);
    const attempts = this.options.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await this.write(id, m, attempt);
        if (outcome === 'duplicate') this.stats.duplicates++;
        else {
          this.stats.stored++;
          this.stats.bytes += m.data.length;
        }
        return { id, outcome };
      } catch (err) {
        if (attempt >= attempts) {
          this.stats.failed++;
          throw err;
        }
        this.stats.retries++;
        const base = this.options.retryBaseMs ?? 100;
        await new Promise((r) => setTimeout(r, base * 2 ** (attempt - 1)));
      }
    }
  }

  private async write(
    id: string,
    m: MediaUpload,
    attempt: number,
  ): Promise<'stored' | 'duplicate'> {
    const files = this.db.collection<{ _id: string }>(`${MEDIA_BUCKET}.files`);
    if (await files.findOne({ _id: id }, { projection: { _id: 1 } })) return 'duplicate';
    // Chunks of an attempt that died before its files document make the next one fail on the
    // chunks' unique index: a retry starts clean (not the first try: that query scans on FerretDB).
    if (attempt > 1)
      await this.db.collection(`${MEDIA_BUCKET}.chunks`).deleteMany({ files_id: id });
    const metadata: Record<string, unknown> = {
      vehicleId: m.vehicleId,
      mediaId: m.mediaId,
      mediaType: m.mediaType,
      format: m.format,
      event: m.event,
      channel: m.channel,
      receivedAt: new Date(m.receivedAt),
    };
    if (m.location) {
      metadata.latitude = m.location.latitude;
      metadata.longitude = m.location.longitude;
      if (m.location.time !== null) metadata.time = new Date(m.location.time);
    }
    const filename = `${m.vehicleId}-${m.mediaId}.${EXTENSIONS[m.format] ?? 'bin'}`;
    await new Promise<void>((resolve, reject) => {
      const upload = this.bucket.openUploadStreamWithId(asFileId(id), filename, { metadata });
      upload.once('error', reject);
      upload.once('finish', () => resolve());
      upload.end(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length));
    });
    return 'stored';
  }

  /** The stored bytes of a media file. */
  async read(id: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.bucket.openDownloadStream(asFileId(id)))
      parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }
}
